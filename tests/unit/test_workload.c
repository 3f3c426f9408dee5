/* test_workload.c — attribution of processes from /proc/PID/cgroup: a fake /proc tree under
 * tests/data/workload/proc (cgroup v2, v1 and hybrid; Kubernetes with the systemd and cgroupfs
 * drivers, containerd and CRI-O; Slurm v1 and v2; Docker; systemd units; the root cgroup; junk),
 * plus table-driven parser cases and bounded reads. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "workload/workload.h"

static const char *proc_root(void)
{
        static char path[4096];
        const char *src = getenv("VIGIL_SOURCE_DIR");

        snprintf(path, sizeof(path), "%s/tests/data/workload/proc", src ? src : ".");
        return path;
}

struct want {
        unsigned pid;
        enum workload_owner_kind kind;
        const char *id, *container_id, *runtime, *qos, *step, *comm;
};

static void test_fake_proc(void **state)
{
        static const struct want w[] = {
            {1001, WL_OWNER_POD, "1a2b3c4d-0000-4e5f-8a9b-0c1d2e3f4a5b",
             "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b", "containerd",
             "burstable", "", "python3"},
            {1002, WL_OWNER_POD, "7d9e1f20-1111-2222-3333-444455556666",
             "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899", "cri-o",
             "guaranteed", "", "trainer"},
            {1003, WL_OWNER_POD, "0f0e0d0c-0b0a-0908-0706-050403020100",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "", "besteffort",
             "", "infer"},
            {2001, WL_OWNER_SLURM, "4242", "", "", "", "0", "mpi_rank0"},
            {2002, WL_OWNER_SLURM, "777", "", "", "", "batch", "sbatch"},
            {3001, WL_OWNER_DOCKER,
             "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0", "", "docker", "",
             "", "cuda_app"},
            {3002, WL_OWNER_DOCKER,
             "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd", "", "docker", "",
             "", "cuda_app"},
            {4001, WL_OWNER_UNIT, "ollama.service", "", "", "", "", "ollama"},
            {4002, WL_OWNER_UNIT, "session-3.scope", "", "", "", "", "python"},
            {5001, WL_OWNER_NONE, "", "", "", "", "", "Xorg"},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
                workload_owner o;
                char path[256], comm[32];
                int r = workload_read_owner(proc_root(), w[i].pid, &o, path, sizeof(path), comm,
                                            sizeof(comm));
                if (r != 0)
                        fail_msg("pid %u: %d", w[i].pid, r);
                if (o.kind != w[i].kind)
                        fail_msg("pid %u: kind %s, want %s", w[i].pid,
                                 workload_owner_kind_name(o.kind),
                                 workload_owner_kind_name(w[i].kind));
                assert_string_equal(o.id, w[i].id);
                assert_string_equal(o.container_id, w[i].container_id);
                assert_string_equal(o.runtime, w[i].runtime);
                assert_string_equal(o.qos, w[i].qos);
                assert_string_equal(o.step, w[i].step);
                assert_string_equal(comm, w[i].comm);
                assert_string_equal(o.ns, ""); /* names come only from the kubelet */
        }
}

static void test_missing_and_junk(void **state)
{
        workload_owner o;
        char path[64];

        (void)state;
        assert_int_equal(workload_read_owner(proc_root(), 999999, &o, path, sizeof(path), NULL, 0),
                         -ENOENT);
        assert_int_equal(workload_read_owner(proc_root(), 6001, &o, path, sizeof(path), NULL, 0),
                         -EBADMSG);
        assert_int_equal(workload_read_owner("/nonexistent-root", 1, &o, NULL, 0, NULL, 0),
                         -ENOENT);
        assert_int_equal(workload_read_owner(proc_root(), 0, &o, NULL, 0, NULL, 0), -EINVAL);
}

struct pcase {
        const char *text;
        int rc;
        enum workload_owner_kind kind;
        const char *id, *path;
};

static void test_parser_table(void **state)
{
        static const struct pcase c[] = {
            /* the pod line wins over the systemd line in a hybrid v1 file */
            {"1:name=systemd:/system.slice/containerd.service\n"
             "5:memory:/kubepods/pod11111111-2222-3333-4444-555555555555/abcdefabcdef\n",
             0, WL_OWNER_POD, "11111111-2222-3333-4444-555555555555",
             "/kubepods/pod11111111-2222-3333-4444-555555555555/abcdefabcdef"},
            /* kind (kubelet.slice nesting) */
            {"0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
             "kubelet-kubepods-besteffort-pod11111111_2222_3333_4444_555555555555.slice/"
             "cri-containerd-0123456789ab.scope\n",
             0, WL_OWNER_POD, "11111111-2222-3333-4444-555555555555", NULL},
            /* a pod UID of the wrong length is not a pod */
            {"0::/kubepods.slice/kubepods-pod1234.slice/x.scope\n", 0, WL_OWNER_UNIT, "x.scope",
             NULL},
            /* job ids are digits */
            {"0::/slurm/uid_0/job_12a/step_0\n", 0, WL_OWNER_NONE, "", NULL},
            /* job_ outside a Slurm hierarchy is not a Slurm job */
            {"0::/system.slice/job_5.service\n", 0, WL_OWNER_UNIT, "job_5.service", NULL},
            {"0::/slurm_node7/uid_1000/job_99/step_extern\n", 0, WL_OWNER_SLURM, "99", NULL},
            {"0::/\n", 0, WL_OWNER_NONE, "", "/"},
            {"", -EBADMSG, WL_OWNER_NONE, "", NULL},
            {"garbage\n:::\nx:y:z\n", -EBADMSG, WL_OWNER_NONE, "", NULL},
            /* a path with ':' in it, no trailing newline */
            {"0::/system.slice/a:b.service", 0, WL_OWNER_UNIT, "a:b.service", NULL},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
                workload_owner o;
                char path[512] = "";
                int r;

                memset(&o, 0x5a, sizeof(o));
                r = workload_parse_cgroup(c[i].text, &o, path, sizeof(path));
                if (r != c[i].rc)
                        fail_msg("case %zu: rc %d, want %d", i, r, c[i].rc);
                if (r < 0)
                        continue;
                if (o.kind != c[i].kind)
                        fail_msg("case %zu: kind %s", i, workload_owner_kind_name(o.kind));
                assert_string_equal(o.id, c[i].id);
                if (c[i].path)
                        assert_string_equal(path, c[i].path);
        }
}

/* A long line and a huge component are cut, never overflow; the result is still well-formed. */
static void test_bounds(void **state)
{
        size_t n = 100000;
        char *text = malloc(n + 16);
        workload_owner o;
        char path[16];

        (void)state;
        assert_non_null(text);
        memcpy(text, "0::/", 4);
        memset(text + 4, 'a', n);
        memcpy(text + 4 + n, ".service\n", 10);
        assert_int_equal(workload_parse_cgroup(text, &o, path, sizeof(path)), 0);
        assert_true(strlen(o.id) < sizeof(o.id));
        assert_true(strlen(path) < sizeof(path));
        free(text);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_fake_proc),
            cmocka_unit_test(test_missing_and_junk),
            cmocka_unit_test(test_parser_table),
            cmocka_unit_test(test_bounds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
