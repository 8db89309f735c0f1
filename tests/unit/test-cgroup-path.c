/* test-cgroup-path.c: the pure half of cgroup.h: /proc/self/cgroup in the hybrid, unified
 * and legacy layouts, the unit's cgroup, path joining, names, cgroup.controllers and
 * cgroup.events. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup-path.h"

#define HYBRID                                                             \
        "9:name=systemd:/liveswap-test.1.0/app.slice/liveswap@t.service\n" \
        "8:pids:/\n"                                                       \
        "4:memory:/process_api/d463f9cece54262a2405867d799acca7\n"         \
        "1:cpu,cpuacct:/\n"                                                \
        "0::/liveswap-test.1.0/app.slice/liveswap@t.service\n"

Test(cgroup_parse_self, hybrid_has_both) {
        char *unified = NULL, *named = NULL;
        cr_assert_eq(cgroup_parse_self(HYBRID, &unified, &named), 0);
        cr_assert_str_eq(unified, "/liveswap-test.1.0/app.slice/liveswap@t.service");
        cr_assert_str_eq(named, "/liveswap-test.1.0/app.slice/liveswap@t.service");
        free(unified);
        free(named);
}

Test(cgroup_parse_self, unified_only) {
        char *unified = NULL, *named = (char *) "x";
        cr_assert_eq(cgroup_parse_self("0::/system.slice/liveswap@app.service/supervisor\n", &unified, &named), 0);
        cr_assert_str_eq(unified, "/system.slice/liveswap@app.service/supervisor");
        cr_assert_null(named);
        free(unified);
}

Test(cgroup_parse_self, legacy_has_no_unified_line) {
        char *unified = (char *) "x", *named = NULL;
        cr_assert_eq(cgroup_parse_self("2:cpu:/\n1:name=systemd:/system.slice/a.service\n", &unified, &named), 0);
        cr_assert_null(unified);
        cr_assert_str_eq(named, "/system.slice/a.service");
        free(named);
}

Test(cgroup_parse_self, named_among_other_controllers_and_no_final_newline) {
        char *unified = NULL, *named = NULL;
        cr_assert_eq(cgroup_parse_self("1:cpu,name=systemd:/a b\n0::/", &unified, &named), 0);
        cr_assert_str_eq(named, "/a b");
        cr_assert_str_eq(unified, "/");
        free(unified);
        free(named);
}

Test(cgroup_parse_self, name_systemd_prefix_is_not_enough) {
        char *unified = NULL, *named = NULL;
        cr_assert_eq(cgroup_parse_self("1:name=systemdx:/a\n", &unified, &named), 0);
        cr_assert_null(named);
        cr_assert_null(unified);
}

Test(cgroup_parse_self, malformed) {
        const char *bad[] = { "0:/a\n", "::/a\n", "0::a\n", "0::\n", "garbage\n" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char *unified = NULL, *named = NULL;
                cr_assert_eq(cgroup_parse_self(bad[i], &unified, &named), -EINVAL, "%s", bad[i]);
        }
}

Test(cgroup_unit_path, the_supervisor_child_is_stripped_once) {
        char *p = cgroup_unit_path("/s.slice/liveswap@a.service/supervisor");
        cr_assert_str_eq(p, "/s.slice/liveswap@a.service");
        free(p);
        p = cgroup_unit_path("/s.slice/liveswap@a.service");
        cr_assert_str_eq(p, "/s.slice/liveswap@a.service");
        free(p);
        p = cgroup_unit_path("/s.slice/not-supervisor");
        cr_assert_str_eq(p, "/s.slice/not-supervisor");
        free(p);
        p = cgroup_unit_path("/supervisor"); /* never the root */
        cr_assert_str_eq(p, "/supervisor");
        free(p);
}

Test(cgroup_join, paths) {
        char *p = cgroup_join("/sys/fs/cgroup/unified", "/a.slice/b.service");
        cr_assert_str_eq(p, "/sys/fs/cgroup/unified/a.slice/b.service");
        free(p);
        p = cgroup_join("/sys/fs/cgroup", "/");
        cr_assert_str_eq(p, "/sys/fs/cgroup");
        free(p);
        p = cgroup_join("/sys/fs/cgroup", "/a/..x/b..");
        cr_assert_str_eq(p, "/sys/fs/cgroup/a/..x/b..");
        free(p);
        cr_assert_null(cgroup_join("/sys/fs/cgroup", "relative"));
        cr_assert_null(cgroup_join("/sys/fs/cgroup", "/a/../../etc"));
        cr_assert_null(cgroup_join("/sys/fs/cgroup", "/.."));
}

Test(cgroup_names, generation_and_worker) {
        char *g = cgroup_generation_name(7), *w = cgroup_worker_name(7, 12);
        cr_assert_str_eq(g, "generation-7");
        cr_assert_str_eq(w, "generation-7/worker-12");
        free(g);
        free(w);
        w = cgroup_worker_name(UINT64_MAX, 0);
        cr_assert_str_eq(w, "generation-18446744073709551615/worker-0");
        free(w);
}

Test(cgroup_subtree_request, only_what_is_offered) {
        char buf[64];
        cr_assert_eq(cgroup_subtree_request("cpuset cpu io memory hugetlb pids rdma misc\n", buf, sizeof(buf)), 0);
        cr_assert_str_eq(buf, "+memory +cpu +pids");
        cr_assert_eq(cgroup_subtree_request("hugetlb\n", buf, sizeof(buf)), 0);
        cr_assert_str_eq(buf, "");
        cr_assert_eq(cgroup_subtree_request("", buf, sizeof(buf)), 0);
        cr_assert_str_eq(buf, "");
        cr_assert_eq(cgroup_subtree_request("cpuset memory\n", buf, sizeof(buf)), 0);
        cr_assert_str_eq(buf, "+memory", "cpuset is not cpu");
        cr_assert_eq(cgroup_subtree_request("memory cpu", buf, 8), -ENOBUFS);
}

Test(cgroup_events, populated) {
        cr_assert_eq(cgroup_events_populated("populated 1\nfrozen 0\n"), 1);
        cr_assert_eq(cgroup_events_populated("populated 0\nfrozen 0\n"), 0);
        cr_assert_eq(cgroup_events_populated("frozen 0\npopulated 0"), 0);
        cr_assert_eq(cgroup_events_populated("frozen 0\n"), -EINVAL);
        cr_assert_eq(cgroup_events_populated("populated 2\n"), -EINVAL);
        cr_assert_eq(cgroup_events_populated("populated 10\n"), -EINVAL);
}
