/* test_pod_labels.c — pod labels (src/workload/kubeapi.c): a Kubernetes label key as a Prometheus
 * label name, the allowlist of regexes, and the Pod object parsed into labels. The cases of the
 * allowlist and of the filtered pods are dcgm-exporter's own (its
 * internal/pkg/transformation/kubernetes_label_filter_test.go: TestShouldIncludeLabel,
 * TestNewLabelFilterCache, TestGetPodMetadata_WithLabelFiltering), so Vigil admits and names
 * exactly what dcgm-exporter does; where Vigil differs (a bad regex is refused, not skipped) the
 * case says so. */
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

#define MAXP 8

/* ---- names ---- */

static void test_sanitise(void **state)
{
        static const struct {
                const char *key, *want;
        } t[] = {
            /* dcgm-exporter's expectations (utils.SanitizeLabelName via getPodMetadata) */
            {"app", "app"},
            {"tier", "tier"},
            {"environment", "environment"},
            {"version", "version"},
            {"app.kubernetes.io/name", "app_kubernetes_io_name"},
            {"app.kubernetes.io/version", "app_kubernetes_io_version"},
            {"app.kubernetes.io/component", "app_kubernetes_io_component"},
            {"build-id", "build_id"},
            {"pod-template-hash", "pod_template_hash"},
            {"controller-revision-hash", "controller_revision_hash"},
            /* every byte outside [a-zA-Z0-9_], UTF-8 included, is one '_' */
            {"Team_A", "Team_A"},
            {"a b", "a_b"},
            {"caf\xc3\xa9", "caf__"},
            /* Vigil: a leading digit gets a '_' in front (Prometheus refuses the name) */
            {"9lives", "_9lives"},
            {"0.example.com/x", "_0_example_com_x"},
        };
        char out[WORKLOAD_POD_LABEL_NAME_MAX];

        (void)state;
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                assert_int_equal(workload_pod_label_name(t[i].key, out, sizeof(out)), 0);
                assert_string_equal(out, t[i].want);
        }
        assert_int_equal(workload_pod_label_name("", out, sizeof(out)), -EINVAL);
        assert_int_equal(workload_pod_label_name("abcdef", out, 6), -ENAMETOOLONG);
        assert_int_equal(workload_pod_label_name("abcde", out, 6), 0);
        assert_string_equal(out, "abcde");
        assert_int_equal(workload_pod_label_name("9bcde", out, 6), -ENAMETOOLONG);
}

/* ---- the allowlist ---- */

/* TestShouldIncludeLabel; the Go string literals' "\\." is the regex \. */
static void test_should_include(void **state)
{
        static const struct {
                const char *name, *patterns, *key;
                bool want;
        } t[] = {
            {"NoFiltering_AllLabelsIncluded", "", "any-label", true},
            {"NoFiltering_ComplexLabel", "", "app.kubernetes.io/name", true},
            {"ExactMatch_Included", "^app$", "app", true},
            {"ExactMatch_Excluded", "^app$", "tier", false},
            {"PrefixMatch_Included", "^app\\..*", "app.kubernetes.io/name", true},
            {"PrefixMatch_Excluded", "^app\\..*", "tier", false},
            {"MultiplePatterns_FirstMatches", "^app$,^tier$", "app", true},
            {"MultiplePatterns_SecondMatches", "^app$,^tier$", "tier", true},
            {"MultiplePatterns_NoneMatch", "^app$,^tier$", "environment", false},
            {"RegexAlternation_FirstOption", "^(app|tier|version)$", "app", true},
            {"RegexAlternation_SecondOption", "^(app|tier|version)$", "tier", true},
            {"RegexAlternation_NoMatch", "^(app|tier|version)$", "environment", false},
            {"K8sStandardLabels_AppName", "^app\\.kubernetes\\.io/.*", "app.kubernetes.io/name",
             true},
            {"K8sStandardLabels_AppVersion", "^app\\.kubernetes\\.io/.*",
             "app.kubernetes.io/version", true},
            {"K8sStandardLabels_NonAppLabel", "^app\\.kubernetes\\.io/.*", "custom-label", false},
            {"FilterHighCardinality_BuildID", "^app$,^tier$", "build-id", false},
            {"FilterHighCardinality_PodTemplateHash", "^app$,^tier$", "pod-template-hash", false},
            /* unanchored like Go's MatchString: a regex matches anywhere in the key */
            {"Unanchored", "kubernetes", "app.kubernetes.io/name", true},
            /* the key is matched as written, before sanitising */
            {"OriginalKey", "^app_kubernetes", "app.kubernetes.io/name", false},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                bool got = workload_pod_label_allowed(t[i].patterns, t[i].key);
                if (got != t[i].want)
                        fail_msg("%s: '%s' with '%s': got %d", t[i].name, t[i].key, t[i].patterns,
                                 got);
        }
}

/* TestNewLabelFilterCache: the pattern lists and how many compile. dcgm-exporter skips a bad
 * pattern (and keeps the others); Vigil refuses the list, naming the pattern. */
static void test_compile(void **state)
{
        static const struct {
                const char *name, *patterns;
                size_t n; /* compiled; (size_t)-1 = refused */
        } t[] = {
            {"EmptyPatterns", "", 0},
            {"ValidSinglePattern", "^app$", 1},
            {"ValidMultiplePatterns", "^app$,^tier$,^env-.*", 3},
            {"InvalidPattern", "[invalid", (size_t)-1},
            {"MixedValidInvalid", "^app$,[invalid,^tier$", (size_t)-1},
            {"ComplexRegexPatterns", "^app\\.kubernetes\\.io/.*,^(tier|environment)$", 2},
        };
        char err[256];

        (void)state;
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                kube_allow a;
                int r = kube_allow_compile(t[i].patterns, &a, err, sizeof(err));
                if (t[i].n == (size_t)-1) {
                        assert_int_equal(r, -EINVAL);
                        assert_non_null(strstr(err, "bad regex '[invalid'"));
                        assert_int_equal(
                            workload_pod_label_allowlist_check(t[i].patterns, err, sizeof(err)),
                            -EINVAL);
                        assert_false(workload_pod_label_allowed(t[i].patterns, "app"));
                        continue;
                }
                assert_int_equal(r, 0);
                if (a.n != t[i].n)
                        fail_msg("%s: %zu compiled, want %zu", t[i].name, a.n, t[i].n);
                kube_allow_free(&a);
        }
}

/* ---- the Pod object ---- */

struct kv {
        const char *k, *v;
};

static void pod_json(char *out, size_t len, const char *uid, const struct kv *l, size_t n)
{
        size_t o =
            (size_t)snprintf(out, len,
                             "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{"
                             "\"name\":\"test-pod\",\"namespace\":\"default\",\"uid\":\"%s\","
                             "\"labels\":{",
                             uid);
        for (size_t i = 0; i < n; i++)
                o += (size_t)snprintf(out + o, len - o, "%s\"%s\":\"%s\"", i ? "," : "", l[i].k,
                                      l[i].v);
        snprintf(out + o, len - o, "}},\"spec\":{\"containers\":[{\"name\":\"c\"}]}}");
}

static bool has(const workload_pod_label *got, size_t n, const char *name, const char *value)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(got[i].name, name) && !strcmp(got[i].value, value))
                        return true;
        return false;
}

/* TestGetPodMetadata_WithLabelFiltering: the labels after filtering and sanitising. */
static void test_pod_metadata_filtering(void **state)
{
        static const struct {
                const char *name, *patterns;
                struct kv pod[MAXP];
                size_t np;
                struct kv want[MAXP];
                size_t nw;
        } t[] = {
            {"NoFiltering_AllLabelsIncluded",
             "",
             {{"app", "nginx"},
              {"tier", "frontend"},
              {"app.kubernetes.io/name", "my-app"},
              {"app.kubernetes.io/version", "1.0.0"}},
             4,
             {{"app", "nginx"},
              {"tier", "frontend"},
              {"app_kubernetes_io_name", "my-app"},
              {"app_kubernetes_io_version", "1.0.0"}},
             4},
            {"FilterByExactMatch",
             "^app$",
             {{"app", "nginx"}, {"tier", "frontend"}},
             2,
             {{"app", "nginx"}},
             1},
            {"FilterByPrefix",
             "^app\\.kubernetes\\.io/.*",
             {{"app", "nginx"},
              {"tier", "frontend"},
              {"app.kubernetes.io/name", "my-app"},
              {"app.kubernetes.io/version", "1.0.0"},
              {"build-id", "abc123"}},
             5,
             {{"app_kubernetes_io_name", "my-app"}, {"app_kubernetes_io_version", "1.0.0"}},
             2},
            {"FilterMultiplePatterns",
             "^app$,^tier$,^environment$",
             {{"app", "nginx"},
              {"tier", "frontend"},
              {"environment", "prod"},
              {"build-id", "abc123"},
              {"pod-template-hash", "xyz789"}},
             5,
             {{"app", "nginx"}, {"tier", "frontend"}, {"environment", "prod"}},
             3},
            {"FilterCommonK8sLabels",
             "^app\\.kubernetes\\.io/.*,^version$",
             {{"app.kubernetes.io/name", "my-app"},
              {"app.kubernetes.io/component", "backend"},
              {"app.kubernetes.io/version", "2.0.0"},
              {"version", "v2"},
              {"build-id", "xyz"},
              {"controller-revision-hash", "abc"}},
             6,
             {{"app_kubernetes_io_name", "my-app"},
              {"app_kubernetes_io_component", "backend"},
              {"app_kubernetes_io_version", "2.0.0"},
              {"version", "v2"}},
             4},
            {"NoMatchingLabels",
             "^nonexistent$",
             {{"app", "nginx"}, {"tier", "frontend"}},
             2,
             {},
             0},
        };
        char json[4096], uid[80], err[256];

        (void)state;
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                workload_pod_label got[WORKLOAD_POD_LABELS_MAX];
                size_t n = 99, left = 99;
                kube_allow a;
                assert_int_equal(kube_allow_compile(t[i].patterns, &a, err, sizeof(err)), 0);
                pod_json(json, sizeof(json), "test-uid-123", t[i].pod, t[i].np);
                assert_int_equal(kubeapi_parse_pod(json, strlen(json), &a, uid, sizeof(uid), got,
                                                   WORKLOAD_POD_LABELS_MAX, &n, &left, err,
                                                   sizeof(err)),
                                 0);
                assert_string_equal(uid, "test-uid-123");
                assert_int_equal(left, 0);
                if (n != t[i].nw)
                        fail_msg("%s: %zu labels, want %zu", t[i].name, n, t[i].nw);
                for (size_t k = 0; k < t[i].nw; k++)
                        if (!has(got, n, t[i].want[k].k, t[i].want[k].v))
                                fail_msg("%s: no %s=\"%s\"", t[i].name, t[i].want[k].k,
                                         t[i].want[k].v);
                kube_allow_free(&a);
        }
}

/* The bounds, repeated names, and answers that are not a Pod. */
static void test_pod_bounds_and_errors(void **state)
{
        char json[8192], uid[80], err[256], big[400];
        workload_pod_label got[WORKLOAD_POD_LABELS_MAX];
        struct kv many[20];
        char keys[20][16];
        size_t n, left;
        kube_allow none = {0};

        (void)state;
        for (int i = 0; i < 20; i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%02d", i);
                many[i] = (struct kv){keys[i], "v"};
        }
        pod_json(json, sizeof(json), "u1", many, 20);
        assert_int_equal(kubeapi_parse_pod(json, strlen(json), &none, uid, sizeof(uid), got,
                                           WORKLOAD_POD_LABELS_MAX, &n, &left, err, sizeof(err)),
                         0);
        assert_int_equal(n, WORKLOAD_POD_LABELS_MAX); /* the first 16, in the answer's order */
        assert_int_equal(left, 4);
        assert_string_equal(got[0].name, "k00");
        assert_string_equal(got[15].name, "k15");

        /* "a.b" and "a_b" sanitise alike: the first keeps the name, the other is left out */
        pod_json(json, sizeof(json), "u1", (struct kv[]){{"a.b", "1"}, {"a_b", "2"}}, 2);
        assert_int_equal(kubeapi_parse_pod(json, strlen(json), &none, uid, sizeof(uid), got,
                                           WORKLOAD_POD_LABELS_MAX, &n, &left, err, sizeof(err)),
                         0);
        assert_int_equal(n, 1);
        assert_int_equal(left, 1);
        assert_true(has(got, n, "a_b", "1"));

        /* a value too long for the cap is left out, not cut */
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        pod_json(json, sizeof(json), "u1", (struct kv[]){{"big", big}, {"ok", "y"}}, 2);
        assert_int_equal(kubeapi_parse_pod(json, strlen(json), &none, uid, sizeof(uid), got,
                                           WORKLOAD_POD_LABELS_MAX, &n, &left, err, sizeof(err)),
                         0);
        assert_int_equal(n, 1);
        assert_true(has(got, n, "ok", "y"));

        /* a pod without labels */
        snprintf(json, sizeof(json), "{\"kind\":\"Pod\",\"metadata\":{\"uid\":\"u2\"}}");
        assert_int_equal(kubeapi_parse_pod(json, strlen(json), &none, uid, sizeof(uid), got,
                                           WORKLOAD_POD_LABELS_MAX, &n, &left, err, sizeof(err)),
                         0);
        assert_int_equal(n, 0);
        assert_string_equal(uid, "u2");

        static const char *const bad[] = {
            "not json",
            "{\"kind\":\"Status\",\"status\":\"Failure\",\"code\":403}",
            "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\"}}",
            "{\"kind\":\"Pod\",\"metadata\":{\"uid\":\"u\",\"labels\":[\"a\"]}}",
            "{\"kind\":\"Pod\",\"metadata\":{\"uid\":\"u\",\"labels\":{\"a\":1}}}",
            "[]",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = '\0';
                assert_int_equal(kubeapi_parse_pod(bad[i], strlen(bad[i]), &none, uid, sizeof(uid),
                                                   got, WORKLOAD_POD_LABELS_MAX, &n, &left, err,
                                                   sizeof(err)),
                                 -EBADMSG);
                assert_true(err[0] != '\0');
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sanitise),
            cmocka_unit_test(test_should_include),
            cmocka_unit_test(test_compile),
            cmocka_unit_test(test_pod_metadata_filtering),
            cmocka_unit_test(test_pod_bounds_and_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
