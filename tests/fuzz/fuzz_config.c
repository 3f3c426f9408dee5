/* fuzz_config.c — config_parse on arbitrary bytes: must never crash, leak or read out of bounds.
 * A successful parse is also turned into JSON, so the view of any accepted config is exercised. */
#include <stddef.h>
#include <stdint.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        vigil_config c;
        char err[512];

        config_init(&c);
        if (config_parse((const char *)data, size, "fuzz.yaml", &c, err, sizeof(err)) == 0)
                json_decref(config_to_json(&c));
        config_release(&c);
        return 0;
}
