/* fuzz_cidr.c — CIDR list parsing, matching and the X-Forwarded-For walk on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/gate.h"
#include "security/cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static cidr_list l;
        char *s = malloc(size + 1), bad[64];
        uint8_t a[16] = {0}, out[16];

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (cidr_list_parse(s, &l, bad, sizeof(bad)) == 0 && l.n)
                cidr_list_match(&l, l.e[0].addr);
        cidr_addr_parse(s, strlen(s), a);
        cidr_list_parse("10.0.0.0/8,::1/128", &l, NULL, 0);
        a[10] = a[11] = 0xff;
        a[12] = 10;
        gate_xff_client(a, s, &l, out);
        free(s);
        return 0;
}
