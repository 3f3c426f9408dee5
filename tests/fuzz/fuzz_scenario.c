/* fuzz_scenario.c — libFuzzer entry point for the fake NVML's scenario parser: any bytes must
 * give a scenario or a "NAME:LINE: reason" error, never a crash, a leak or a hang. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fakenvml/fake-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fake_scenario *sc = NULL;
        char err[512];
        int r;

        r = fake_scenario_parse((const char *)data, size, "fuzz.yaml", "/nonexistent", &sc, err,
                                sizeof(err));
        if (r < 0) {
                /* Every failure names where it happened. */
                if (strncmp(err, "fuzz.yaml:", 10) != 0 && r != -ENOMEM)
                        __builtin_trap();
                return 0;
        }
        fake_scenario_free(sc);
        return 0;
}
