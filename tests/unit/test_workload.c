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

#include "workload/workload-internal.h"
#include "workload/workload.h"
#include "podresources.pb-c.h"

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

/* /var/log/containers names: POD_NAMESPACE_CONTAINER-ID.log */
static void test_names_parse(void **state)
{
        kube_names k;
        char id[65];

        (void)state;
        memset(id, 'a', 64);
        id[64] = '\0';
        {
                char f[256];
                snprintf(f, sizeof(f), "train-a-7d9f_ml-team_trainer-sidecar-%s.log", id);
                assert_int_equal(names_parse(f, &k), 0);
                assert_string_equal(k.pod, "train-a-7d9f");
                assert_string_equal(k.ns, "ml-team");
                assert_string_equal(k.container, "trainer-sidecar");
                assert_string_equal(k.id, id);
                snprintf(f, sizeof(f), "a_b_c_d-%s.log", id); /* a fourth '_' */
                assert_int_equal(names_parse(f, &k), -EINVAL);
                snprintf(f, sizeof(f), "a_b-%s.log", id); /* no container */
                assert_int_equal(names_parse(f, &k), -EINVAL);
                snprintf(f, sizeof(f), "a_b_c-%s.txt", id);
                assert_int_equal(names_parse(f, &k), -EINVAL);
                assert_int_equal(names_parse("a_b_c-nothex.log", &k), -EINVAL);
                assert_int_equal(names_parse(".log", &k), -EINVAL);
        }
}

/* The decoder against bytes protobuf-c packs from the same messages: only nvidia.com/ devices are
 * kept, with their pod, namespace and container. */
static void test_kubelet_decode(void **state)
{
        V1__ContainerDevices gpu = V1__CONTAINER_DEVICES__INIT, fpga = V1__CONTAINER_DEVICES__INIT;
        V1__ContainerResources c = V1__CONTAINER_RESOURCES__INIT;
        V1__PodResources p = V1__POD_RESOURCES__INIT;
        V1__ListPodResourcesResponse resp = V1__LIST_POD_RESOURCES_RESPONSE__INIT;
        char *gids[] = {"GPU-1111::0", "GPU-2222"}, *fids[] = {"fpga0"};
        V1__ContainerDevices *devs[] = {&gpu, &fpga};
        V1__ContainerResources *cs[] = {&c};
        V1__PodResources *ps[] = {&p};
        uint8_t buf[1024];
        kube_alloc *a = NULL;
        size_t n = 0, len;
        char err[256];

        (void)state;
        gpu.resource_name = "nvidia.com/gpu";
        gpu.n_device_ids = 2;
        gpu.device_ids = gids;
        fpga.resource_name = "example.com/fpga";
        fpga.n_device_ids = 1;
        fpga.device_ids = fids;
        c.name = "trainer";
        c.n_devices = 2;
        c.devices = devs;
        p.name = "train-a";
        p.namespace_ = "ml";
        p.n_containers = 1;
        p.containers = cs;
        resp.n_pod_resources = 1;
        resp.pod_resources = ps;
        len = v1__list_pod_resources_response__pack(&resp, buf);
        assert_true(len > 0 && len < sizeof(buf));
        assert_int_equal(kubelet_decode(buf, len, &a, &n, err, sizeof(err)), 0);
        assert_int_equal(n, 2);
        assert_string_equal(a[0].pod, "train-a");
        assert_string_equal(a[0].ns, "ml");
        assert_string_equal(a[0].container, "trainer");
        assert_string_equal(a[0].device, "GPU-1111::0");
        assert_string_equal(a[1].device, "GPU-2222");
        free(a);
        /* garbage: a clear error, nothing returned */
        a = NULL;
        memset(buf, 0xff, 16);
        assert_int_equal(kubelet_decode(buf, 16, &a, &n, err, sizeof(err)), -EPROTO);
        assert_null(a);
        assert_non_null(strstr(err, "ListPodResourcesResponse"));
        /* an empty answer is no allocation */
        assert_int_equal(kubelet_decode(buf, 0, &a, &n, err, sizeof(err)), 0);
        assert_int_equal(n, 0);
}

/* A socket that is not there: -ENOENT naming the path, before libgrpc is even loaded. */
static void test_kubelet_missing(void **state)
{
        kube_alloc *a = NULL;
        size_t n = 0;
        char err[256];

        (void)state;
        assert_int_equal(
            kubelet_list("unix:///nonexistent/kubelet.sock", 100000, &a, &n, err, sizeof(err)),
            -ENOENT);
        assert_non_null(strstr(err, "/nonexistent/kubelet.sock"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_fake_proc),       cmocka_unit_test(test_missing_and_junk),
            cmocka_unit_test(test_parser_table),    cmocka_unit_test(test_bounds),
            cmocka_unit_test(test_names_parse),     cmocka_unit_test(test_kubelet_decode),
            cmocka_unit_test(test_kubelet_missing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
