/* test_xid.c — the XID catalog: sorted, unique, messages present, the codes DCGM and GPUd call
 * critical or warning are covered with the right severity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "health/xid.h"

static void test_sorted_unique(void **state)
{
        (void)state;
        assert_true(xid_count() > 80);
        for (size_t i = 0; i < xid_count(); i++) {
                const xid_info *x = xid_at(i);
                assert_non_null(x);
                assert_true(x->known);
                assert_true(strlen(x->message) > 0);
                if (i)
                        assert_true(xid_at(i - 1)->code < x->code);
                assert_ptr_equal(xid_lookup(x->code), x);
        }
        assert_null(xid_at(xid_count()));
}

static void test_known_codes(void **state)
{
        static const struct {
                uint32_t code;
                const char *msg;
                enum xid_severity sev;
        } cases[] = {
            {13, "Graphics Engine Exception", XID_SEV_WARNING},
            {31, "GPU memory page fault", XID_SEV_WARNING},
            {48, "Double Bit ECC Error", XID_SEV_CRITICAL},
            {63, "ECC page retirement or row remapping recording event", XID_SEV_WARNING},
            {64, "ECC page retirement or row remapper recording failure", XID_SEV_CRITICAL},
            {74, "NVLINK Error", XID_SEV_CRITICAL},
            {79, "GPU has fallen off the bus", XID_SEV_CRITICAL},
            {94, "Contained ECC error", XID_SEV_WARNING},
            {95, "Uncontained ECC error", XID_SEV_CRITICAL},
            {119, "GSP RPC Timeout", XID_SEV_CRITICAL},
            {120, "GSP Error", XID_SEV_CRITICAL},
            {140, "Unrecovered ECC Error", XID_SEV_CRITICAL},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const xid_info *x = xid_lookup(cases[i].code);
                assert_int_equal(x->code, cases[i].code);
                assert_string_equal(x->message, cases[i].msg);
                assert_int_equal(x->severity, cases[i].sev);
        }
}

/* Every code DCGM 4.6's health module or GPUd treats as critical/warning (dcgm-compat.md
 * §2.3-2.4) is catalogued at WARNING or above. */
static void test_coverage(void **state)
{
        static const uint32_t codes[] = {
            9,   12,  13,  16,  18,  19,  26,  27,  28,  29,  30,  31,  32,  33,  34,
            35,  36,  38,  39,  42,  43,  44,  45,  46,  47,  48,  54,  56,  57,  58,
            59,  60,  61,  62,  63,  64,  65,  67,  68,  69,  73,  74,  78,  79,  81,
            92,  93,  94,  95,  110, 119, 120, 121, 123, 137, 140, 143, 144, 145, 146,
            147, 148, 149, 150, 151, 155, 156, 158, 163, 166, 167, 169, 170, 172, 173,
        };
        (void)state;
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
                const xid_info *x = xid_lookup(codes[i]);
                assert_true(x->known);
                assert_true(x->severity >= XID_SEV_WARNING);
        }
}

static void test_unknown(void **state)
{
        const xid_info *x = xid_lookup(99999);
        (void)state;
        assert_false(x->known);
        assert_string_equal(x->message, "Unknown XID");
        assert_string_equal(xid_severity_name(XID_SEV_CRITICAL), "critical");
        assert_string_equal(xid_action_name(XID_ACT_REBOOT), "reboot");
        assert_true(strlen(xid_action_text(XID_ACT_RESET_GPU)) > 10);
}

/* err_msg as dcgm-exporter writes it: NVIDIA's catalog wording, "Unknown Error" past it. */
static void test_err_msg(void **state)
{
        (void)state;
        assert_string_equal(xid_err_msg(0), "No Error");
        assert_string_equal(xid_err_msg(5), "Unused");
        assert_string_equal(xid_err_msg(79), "GPU has fallen off the bus");
        assert_string_equal(xid_err_msg(70), "CE3: Unknown Error");
        assert_string_equal(xid_err_msg(167), xid_err_msg(167)); /* listed: never NULL */
        assert_string_equal(xid_err_msg(173), "Unknown Error");
        assert_string_equal(xid_err_msg(99999), "Unknown Error");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sorted_unique), cmocka_unit_test(test_known_codes),
            cmocka_unit_test(test_coverage),      cmocka_unit_test(test_unknown),
            cmocka_unit_test(test_err_msg),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
