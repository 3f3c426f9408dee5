/* test_snapshot.c — snapshots are freed exactly when the last reference goes, and a slot hands
 * readers on other threads a consistent, live buffer while a publisher replaces it (run this
 * under the ASan build: a use-after-free or leak fails it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/snapshot.h"

static char *dup_str(const char *s)
{
        char *p = strdup(s);

        assert_non_null(p);
        return p;
}

static void test_basic(void **state)
{
        snapshot *s = NULL, *s2;

        (void)state;
        assert_int_equal(snapshot_new(dup_str("hello"), 5, 1234, &s), 0);
        assert_int_equal(snapshot_len(s), 5);
        assert_memory_equal(snapshot_data(s), "hello", 5);
        assert_int_equal(snapshot_ts(s), 1234);
        s2 = snapshot_ref(s);
        assert_ptr_equal(s2, s);
        snapshot_unref(s);
        assert_memory_equal(snapshot_data(s2), "hello", 5); /* still alive */
        snapshot_unref(s2);
        snapshot_unref(NULL);
        assert_null(snapshot_ref(NULL));

        assert_int_equal(snapshot_new(NULL, 0, 0, &s), 0); /* empty body */
        assert_int_equal(snapshot_len(s), 0);
        snapshot_unref(s);
        assert_int_equal(snapshot_new(NULL, 3, 0, &s), -EINVAL);
        assert_int_equal(snapshot_new(dup_str("x"), 1, 0, NULL), -EINVAL); /* data freed */
}

static void test_slot(void **state)
{
        snapshot_slot slot;
        snapshot *a = NULL, *b = NULL, *got, *got2;

        (void)state;
        snapshot_slot_init(&slot);
        assert_null(snapshot_slot_get(&slot));
        assert_int_equal(snapshot_new(dup_str("one"), 3, 1, &a), 0);
        snapshot_slot_publish(&slot, a); /* slot owns a */
        got = snapshot_slot_get(&slot);
        assert_ptr_equal(got, a);
        assert_int_equal(snapshot_new(dup_str("two"), 3, 2, &b), 0);
        snapshot_slot_publish(&slot, b); /* a's slot reference dropped; ours keeps it alive */
        assert_memory_equal(snapshot_data(got), "one", 3);
        got2 = snapshot_slot_get(&slot);
        assert_int_equal(snapshot_ts(got2), 2);
        snapshot_unref(got);
        snapshot_unref(got2);
        snapshot_slot_publish(&slot, NULL);
        assert_null(snapshot_slot_get(&slot));
        assert_int_equal(snapshot_new(dup_str("three"), 5, 3, &a), 0);
        snapshot_slot_publish(&slot, a);
        snapshot_slot_release(&slot); /* drops the last reference */
}

enum { PUBLISHES = 20000, READERS = 3 };
static snapshot_slot tslot;
static int tdone;

/* Each body is "seq:<n>:" padded with a byte derived from n, so a reader can check it whole. */
static void *publisher(void *arg)
{
        (void)arg;
        for (int n = 1; n <= PUBLISHES; n++) {
                size_t len = 16 + (size_t)(n % 200);
                char *d = malloc(len);
                snapshot *s = NULL;

                if (!d)
                        return (void *)1;
                memset(d, 'a' + n % 26, len);
                snprintf(d, 16, "seq:%d:", n);
                if (snapshot_new(d, len, n, &s) < 0)
                        return (void *)1;
                snapshot_slot_publish(&tslot, s);
        }
        __atomic_store_n(&tdone, 1, __ATOMIC_RELEASE);
        return NULL;
}

static void *reader(void *arg)
{
        uintptr_t bad = 0;
        int64_t last = 0;

        (void)arg;
        while (!__atomic_load_n(&tdone, __ATOMIC_ACQUIRE)) {
                snapshot *s = snapshot_slot_get(&tslot);
                snapshot *keep;
                int n;

                if (!s)
                        continue;
                keep = snapshot_ref(s); /* a second reference, dropped in the other order */
                n = (int)snapshot_ts(s);
                if (n < last)
                        bad++; /* publishes are seen in order */
                last = n;
                if (snapshot_len(s) != 16 + (size_t)(n % 200))
                        bad++;
                for (size_t i = 16; i < snapshot_len(s); i++)
                        if (snapshot_data(s)[i] != 'a' + n % 26)
                                bad++;
                snapshot_unref(s);
                if (atoi(snapshot_data(keep) + 4) != n)
                        bad++;
                snapshot_unref(keep);
        }
        return (void *)bad;
}

static void test_threads(void **state)
{
        pthread_t p, r[READERS];
        void *res;

        (void)state;
        snapshot_slot_init(&tslot);
        tdone = 0;
        for (int i = 0; i < READERS; i++)
                assert_int_equal(pthread_create(&r[i], NULL, reader, NULL), 0);
        assert_int_equal(pthread_create(&p, NULL, publisher, NULL), 0);
        assert_int_equal(pthread_join(p, &res), 0);
        assert_null(res);
        for (int i = 0; i < READERS; i++) {
                assert_int_equal(pthread_join(r[i], &res), 0);
                assert_int_equal((uintptr_t)res, 0);
        }
        snapshot *s = snapshot_slot_get(&tslot);
        assert_non_null(s);
        assert_int_equal(snapshot_ts(s), PUBLISHES);
        snapshot_unref(s);
        snapshot_slot_release(&tslot);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_basic),
            cmocka_unit_test(test_slot),
            cmocka_unit_test(test_threads),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
