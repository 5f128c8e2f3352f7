/* Checks that the installed header and library agree on the version. */
#include <cmpkit.h>

#include <stdio.h>
#include <string.h>

#define CMPKIT_STR_(x) #x
#define CMPKIT_STR(x) CMPKIT_STR_(x)
#define HEADER_VERSION                                                                             \
    CMPKIT_STR(CMPKIT_VERSION_MAJOR) "." CMPKIT_STR(CMPKIT_VERSION_MINOR) "." CMPKIT_STR(           \
        CMPKIT_VERSION_PATCH)

int main(void) {
    const char *version = cmpkit_version();
    uint32_t number = cmpkit_version_number();
    uint32_t expected =
        CMPKIT_VERSION_MAJOR * 10000u + CMPKIT_VERSION_MINOR * 100u + CMPKIT_VERSION_PATCH;

    if (version == NULL || strcmp(version, HEADER_VERSION) != 0) {
        fprintf(stderr, "cmpkit_version() is \"%s\" but the header says %s\n",
                version ? version : "(null)", HEADER_VERSION);
        return 1;
    }
    if (number != expected) {
        fprintf(stderr, "cmpkit_version_number() is %u but the header says %u\n",
                (unsigned)number, (unsigned)expected);
        return 1;
    }
    if (strcmp(cmpkit_result_name(CMPKIT_RESULT_OK), "unknown") == 0) {
        fprintf(stderr, "cmpkit_result_name(CMPKIT_RESULT_OK) is unknown\n");
        return 1;
    }
    printf("cmpkit %s (%u)\n", version, (unsigned)number);
    return 0;
}
