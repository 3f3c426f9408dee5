/* driver.c — a standalone main for libFuzzer entry points, so every fuzz target also runs as a
 * short smoke test under ctest with gcc and the sanitizers: it replays each file of the corpus
 * directory, then feeds N deterministic mutations of them (bit flips, truncations, splices).
 * Real campaigns use clang's libFuzzer (`make fuzz`). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUTS 512
#define MAX_SIZE   (64 * 1024)

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

int main(int argc, char **argv)
{
        static uint8_t *inputs[MAX_INPUTS];
        static size_t sizes[MAX_INPUTS];
        static uint8_t scratch[MAX_SIZE * 2];
        size_t n = 0;
        long iterations = argc > 2 ? atol(argv[2]) : 1000;
        DIR *d;
        struct dirent *e;

        if (argc < 2) {
                fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS]\n", argv[0]);
                return 2;
        }
        d = opendir(argv[1]);
        if (!d) {
                fprintf(stderr, "cannot open corpus directory '%s'\n", argv[1]);
                return 2;
        }
        while ((e = readdir(d)) && n < MAX_INPUTS) {
                char path[4096];
                FILE *f;
                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
                f = fopen(path, "rb");
                if (!f)
                        continue;
                inputs[n] = malloc(MAX_SIZE);
                sizes[n] = fread(inputs[n], 1, MAX_SIZE, f);
                fclose(f);
                LLVMFuzzerTestOneInput(inputs[n], sizes[n]);
                n++;
        }
        closedir(d);
        if (n == 0) {
                fprintf(stderr, "corpus '%s' is empty\n", argv[1]);
                return 2;
        }
        for (long i = 0; i < iterations; i++) {
                size_t a = rng() % n, len = sizes[a];
                memcpy(scratch, inputs[a], len);
                switch (rng() % 4) {
                case 0: /* flip a few bits */
                        for (int k = 0; k < 4 && len; k++)
                                scratch[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
                        break;
                case 1: /* truncate */
                        len = len ? rng() % len : 0;
                        break;
                case 2: { /* splice another input */
                        size_t b = rng() % n, cut = len ? rng() % len : 0;
                        size_t take = sizes[b] ? rng() % sizes[b] : 0;
                        memcpy(scratch + cut, inputs[b], take);
                        len = cut + take;
                        break;
                }
                default: /* insert random bytes */
                        for (int k = 0; k < 8 && len < MAX_SIZE; k++)
                                scratch[len++] = (uint8_t)rng();
                        break;
                }
                LLVMFuzzerTestOneInput(scratch, len);
        }
        printf("ok: %zu corpus inputs, %ld mutations\n", n, iterations);
        for (size_t i = 0; i < n; i++)
                free(inputs[i]);
        return 0;
}
