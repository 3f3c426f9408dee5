/* test_crypto.c — AES-256-GCM sealing and the keyring: round trip, tamper, wrong key, truncated
 * blob, key rotation still opens old data, keyring file, no plaintext in sealed bytes, files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/crypto.h"
#include "store/sysio.h"
#include "sysio_fault.h"

#define SECRET  "correct horse battery staple 42"
#define SECRET2 "another passphrase entirely 777"
#define MARKER  "PLAINTEXT-MARKER-d41d8cd98f00"

static char tmpdir[256];

static int setup(void **state)
{
        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/vigil-test-crypto-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        return 0;
}

static int teardown(void **state)
{
        char cmd[512];
        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static crypto_keyring *ring(const char *secret)
{
        crypto_keyring *kr = NULL;
        char err[256];
        assert_int_equal(crypto_keyring_new(secret, &kr, err, sizeof(err)), 0);
        return kr;
}

static bool contains(const uint8_t *hay, size_t n, const char *needle)
{
        size_t l = strlen(needle);
        for (size_t i = 0; i + l <= n; i++)
                if (!memcmp(hay + i, needle, l))
                        return true;
        return false;
}

static void test_round_trip(void **state)
{
        uint8_t *blob = NULL, *pt = NULL;
        size_t bl, pl;
        (void)state;
        crypto_keyring *kr = ring(SECRET);
        assert_int_equal(crypto_seal(kr, MARKER, strlen(MARKER), "aad", 3, &blob, &bl), 0);
        assert_int_equal(bl, strlen(MARKER) + CRYPTO_OVERHEAD);
        assert_memory_equal(blob, CRYPTO_MAGIC, CRYPTO_MAGIC_LEN);
        assert_false(contains(blob, bl, MARKER));
        assert_false(contains(blob, bl, "PLAINTEXT"));
        assert_int_equal(crypto_open(kr, blob, bl, "aad", 3, &pt, &pl), 0);
        assert_int_equal(pl, strlen(MARKER));
        assert_string_equal((char *)pt, MARKER);
        free(pt);
        /* The AAD is bound: another context does not open it. */
        assert_int_equal(crypto_open(kr, blob, bl, "aaX", 3, &pt, &pl), -EBADMSG);
        /* Empty plaintext works too. */
        free(blob);
        assert_int_equal(crypto_seal(kr, "", 0, NULL, 0, &blob, &bl), 0);
        assert_int_equal(crypto_open(kr, blob, bl, NULL, 0, &pt, &pl), 0);
        assert_int_equal(pl, 0);
        free(pt);
        free(blob);
        crypto_keyring_free(kr);
}

static void test_tamper(void **state)
{
        uint8_t *blob = NULL, *pt = NULL;
        size_t bl, pl;
        (void)state;
        crypto_keyring *kr = ring(SECRET);
        assert_int_equal(crypto_seal(kr, MARKER, strlen(MARKER), NULL, 0, &blob, &bl), 0);
        /* Every single-byte flip after the magic is caught (header, nonce, ciphertext, tag). */
        for (size_t i = CRYPTO_MAGIC_LEN; i < bl; i++) {
                blob[i] ^= 0x01;
                int r = crypto_open(kr, blob, bl, NULL, 0, &pt, &pl);
                assert_true(r == -EBADMSG || r == -ENOKEY);
                blob[i] ^= 0x01;
        }
        blob[0] ^= 1;
        assert_int_equal(crypto_open(kr, blob, bl, NULL, 0, &pt, &pl), -EINVAL);
        blob[0] ^= 1;
        assert_int_equal(crypto_open(kr, blob, bl, NULL, 0, &pt, &pl), 0);
        free(pt);
        free(blob);
        crypto_keyring_free(kr);
}

static void test_truncated(void **state)
{
        uint8_t *blob = NULL, *pt = NULL;
        size_t bl, pl;
        (void)state;
        crypto_keyring *kr = ring(SECRET);
        assert_int_equal(crypto_seal(kr, MARKER, strlen(MARKER), NULL, 0, &blob, &bl), 0);
        for (size_t n = 0; n < bl; n++) {
                int r = crypto_open(kr, blob, n, NULL, 0, &pt, &pl);
                assert_true(r == -EINVAL || r == -EBADMSG);
        }
        free(blob);
        crypto_keyring_free(kr);
}

static void test_wrong_key(void **state)
{
        uint8_t *blob = NULL, *pt = NULL;
        size_t bl, pl;
        char err[256];
        crypto_keyring *bad = NULL;
        (void)state;
        crypto_keyring *a = ring(SECRET), *b = ring(SECRET2);
        /* Data key 1 of another master has the same id but another key: authentication fails. */
        assert_int_equal(crypto_seal(a, MARKER, strlen(MARKER), NULL, 0, &blob, &bl), 0);
        assert_int_equal(crypto_open(b, blob, bl, NULL, 0, &pt, &pl), -EBADMSG);
        free(blob);
        /* Master-key blobs carry the master's fingerprint: another master has no such key. */
        assert_int_equal(crypto_seal_master(a, MARKER, strlen(MARKER), NULL, 0, &blob, &bl), 0);
        assert_int_equal(crypto_open(b, blob, bl, NULL, 0, &pt, &pl), -ENOKEY);
        assert_int_equal(crypto_open(a, blob, bl, NULL, 0, &pt, &pl), 0);
        free(pt);
        free(blob);
        assert_int_not_equal(crypto_keyring_master_id(a), crypto_keyring_master_id(b));
        /* Missing and too-short keys are refused with a reason. */
        assert_int_equal(crypto_keyring_new("", &bad, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "no encryption key"));
        assert_int_equal(crypto_keyring_new("short", &bad, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "too short"));
        /* A raw hex key. */
        crypto_keyring *hx =
            ring("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
        assert_int_equal(crypto_keyring_active(hx), 1);
        crypto_keyring_free(hx);
        crypto_keyring_free(a);
        crypto_keyring_free(b);
}

static void test_rotation(void **state)
{
        uint8_t *old = NULL, *nw = NULL, *pt = NULL;
        size_t ol, nl, pl;
        uint32_t id, kid;
        char path[512], err[256];
        (void)state;
        crypto_keyring *kr = ring(SECRET);
        assert_int_equal(crypto_keyring_active(kr), 1);
        assert_int_equal(crypto_seal(kr, "old data", 8, NULL, 0, &old, &ol), 0);
        assert_int_equal(crypto_keyring_rotate(kr, &id), 0);
        assert_int_equal(id, 2);
        assert_int_equal(crypto_keyring_active(kr), 2);
        assert_int_equal(crypto_seal(kr, "new data", 8, NULL, 0, &nw, &nl), 0);
        assert_int_equal(crypto_blob_key_id(old, ol, &kid), 0);
        assert_int_equal(kid, 1);
        assert_int_equal(crypto_blob_key_id(nw, nl, &kid), 0);
        assert_int_equal(kid, 2);
        assert_int_equal(crypto_open(kr, old, ol, NULL, 0, &pt, &pl), 0);
        assert_string_equal((char *)pt, "old data");
        free(pt);

        /* Save and load: the rotated random key survives a restart; the file is 0600 and sealed. */
        snprintf(path, sizeof(path), "%s/keyring", tmpdir);
        assert_int_equal(crypto_keyring_save(kr, path, err, sizeof(err)), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        crypto_keyring *k2 = ring(SECRET);
        assert_int_equal(crypto_keyring_load(k2, path, err, sizeof(err)), 0);
        assert_int_equal(crypto_keyring_count(k2), 2);
        assert_int_equal(crypto_open(k2, nw, nl, NULL, 0, &pt, &pl), 0);
        assert_string_equal((char *)pt, "new data");
        free(pt);
        assert_int_equal(crypto_open(k2, old, ol, NULL, 0, &pt, &pl), 0);
        free(pt);
        /* The wrong master key does not open the keyring and says so; the file is untouched. */
        crypto_keyring *k3 = ring(SECRET2);
        assert_int_equal(crypto_keyring_load(k3, path, err, sizeof(err)), -EBADMSG);
        assert_non_null(strstr(err, "wrong encryption key"));
        assert_int_equal(crypto_keyring_count(k3), 1);
        struct stat st2;
        assert_int_equal(stat(path, &st2), 0);
        assert_int_equal(st2.st_mtime, st.st_mtime);
        /* A missing keyring is -ENOENT. */
        snprintf(path, sizeof(path), "%s/nope", tmpdir);
        assert_int_equal(crypto_keyring_load(k3, path, err, sizeof(err)), -ENOENT);
        crypto_keyring_free(k3);
        crypto_keyring_free(k2);
        free(old);
        free(nw);
        crypto_keyring_free(kr);
}

static void write_file(const char *path, const char *text, size_t reps)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        for (size_t i = 0; i < reps; i++)
                fputs(text, f);
        fclose(f);
}

static void test_files(void **state)
{
        char in[512], enc[512], out[512], err[512];
        (void)state;
        crypto_keyring *kr = ring(SECRET), *other = ring(SECRET2);
        snprintf(in, sizeof(in), "%s/in", tmpdir);
        snprintf(enc, sizeof(enc), "%s/in.enc", tmpdir);
        snprintf(out, sizeof(out), "%s/out", tmpdir);
        write_file(in, MARKER "\n", 20000); /* > several chunks */
        assert_int_equal(crypto_seal_file(kr, in, enc, err, sizeof(err)), 0);
        /* Refuses to overwrite. */
        assert_int_equal(crypto_seal_file(kr, in, enc, err, sizeof(err)), -EEXIST);
        /* No plaintext in the encrypted bytes. */
        FILE *f = fopen(enc, "rb");
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        assert_false(contains(buf, n, "PLAINTEXT-MARKER"));
        assert_int_equal(crypto_open_file(kr, enc, out, err, sizeof(err)), 0);
        assert_int_equal(system("cmp -s /dev/null /dev/null"), 0);
        char cmd[2048];
        snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", in, out);
        assert_int_equal(system(cmd), 0);
        unlink(out);

        /* Wrong key: clear error, no output left behind. */
        assert_int_equal(crypto_open_file(other, enc, out, err, sizeof(err)), -ENOKEY);
        assert_non_null(strstr(err, "wrong encryption key"));
        assert_int_not_equal(access(out, F_OK), 0);

        /* Tampered: one byte in the middle. */
        f = fopen(enc, "r+b");
        fseek(f, 5000, SEEK_SET);
        int c = fgetc(f);
        fseek(f, 5000, SEEK_SET);
        fputc(c ^ 0x20, f);
        fclose(f);
        assert_int_equal(crypto_open_file(kr, enc, out, err, sizeof(err)), -EBADMSG);
        assert_non_null(strstr(err, "authentication failed"));
        assert_int_not_equal(access(out, F_OK), 0);

        /* Truncated. */
        assert_int_equal(truncate(enc, 4000), 0);
        assert_int_equal(crypto_open_file(kr, enc, out, err, sizeof(err)), -EBADMSG);
        assert_int_not_equal(access(out, F_OK), 0);
        assert_int_equal(truncate(enc, 20), 0);
        assert_int_equal(crypto_open_file(kr, enc, out, err, sizeof(err)), -EBADMSG);
        assert_non_null(strstr(err, "truncated"));

        /* Not encrypted at all. */
        assert_int_equal(crypto_open_file(kr, in, out, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "not an encrypted"));
        crypto_keyring_free(kr);
        crypto_keyring_free(other);
}

/* Saving the keyring with each of its calls failing in turn: an error that says why every time
 * (the directory's fsync included: a rotation must not be reported done when the new keyring
 * may not survive a power loss), no keyring.tmp left, and a keyring file that loads and is the
 * old one or the new one. */
static void test_keyring_save_faults(void **state)
{
        (void)state;
        char path[512], tmp[600], err[512];
        crypto_keyring *kr = NULL;
        uint32_t id;
        unsigned tried = 0;

        snprintf(path, sizeof(path), "%s/faulty-keyring", tmpdir);
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        assert_int_equal(crypto_keyring_new(SECRET, &kr, err, sizeof(err)), 0);
        assert_int_equal(crypto_keyring_rotate(kr, &id), 0);
        assert_int_equal(crypto_keyring_save(kr, path, err, sizeof(err)), 0); /* old: 2 keys */
        assert_int_equal(crypto_keyring_rotate(kr, &id), 0);                  /* new: 3 keys */
        for (fail_at = 1;; fail_at++) {
                calls = 0;
                err[0] = '\0';
                sysio_set(&faulty);
                int r = crypto_keyring_save(kr, path, err, sizeof(err));
                sysio_set(NULL);
                if (calls < fail_at) {
                        assert_int_equal(r, 0); /* no call left to fail: done */
                        break;
                }
                tried++;
                if (r == 0)
                        fail_msg("call %u failed but the save reported success", fail_at);
                assert_true(err[0] != '\0');
                assert_int_not_equal(access(tmp, F_OK), 0);
                crypto_keyring *back = NULL;
                assert_int_equal(crypto_keyring_new(SECRET, &back, err, sizeof(err)), 0);
                if (crypto_keyring_load(back, path, err, sizeof(err)) < 0)
                        fail_msg("call %u failed: the keyring no longer loads: %s", fail_at, err);
                unsigned n = crypto_keyring_count(back);
                assert_true(n == 3 || n == 2);
                crypto_keyring_free(back);
        }
        assert_true(tried >= 6); /* open, write, fsync, rename, open dir, fsync dir */
        crypto_keyring_free(kr);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_tamper),
            cmocka_unit_test(test_truncated),
            cmocka_unit_test(test_wrong_key),
            cmocka_unit_test(test_rotation),
            cmocka_unit_test(test_files),
            cmocka_unit_test(test_keyring_save_faults),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
