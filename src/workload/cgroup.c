/* cgroup.c — attribution of a process from its cgroup path (/proc/PID/cgroup), for cgroup v2,
 * v1 and hybrid hosts. Recognised, most specific first:
 *   Kubernetes  systemd driver: /kubepods.slice/kubepods-burstable.slice/
 *                 kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope
 *                 (crio-<id>.scope, docker-<id>.scope, cri-dockerd-<id>.scope; guaranteed pods sit
 *                 directly under kubepods.slice; kind's kubelet.slice/kubelet-kubepods... too)
 *               cgroupfs driver: /kubepods/besteffort/pod<uid>/<container id>
 *   Slurm       v1: /slurm/uid_<uid>/job_<id>/step_<s>/task_<t>; v2:
 *               /system.slice/slurmstepd.scope/job_<id>/step_<s>/...
 *   Docker      /system.slice/docker-<id>.scope, /docker/<id>
 *   systemd     the deepest "*.service" (else "*.scope") component
 * Text only; nothing here trusts the file: every copy is bounded, odd components are ignored. */
#include "workload.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/macros.h"

#define CGROUP_FILE_MAX (64 * 1024) /* bytes of /proc/PID/cgroup read (v1 has ~13 lines) */
#define COMP_MAX        24          /* path components looked at */
#define COMP_LEN        256         /* bytes of one component */

static bool has_prefix(const char *s, const char *p)
{
        return strncmp(s, p, strlen(p)) == 0;
}

static bool has_suffix(const char *s, const char *suf)
{
        size_t n = strlen(s), m = strlen(suf);
        return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Copy s[0..len) into dst (size cap), NUL-terminated. */
static void copy_n(char *dst, size_t cap, const char *s, size_t len)
{
        if (len >= cap)
                len = cap - 1;
        memcpy(dst, s, len);
        dst[len] = '\0';
}

static bool all_hex(const char *s, size_t len)
{
        if (!len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

/* A pod UID: 36 characters of hex and '-' ('_' in systemd slice names, given back as '-'). */
static bool take_uid(char *dst, size_t cap, const char *s, size_t len)
{
        char tmp[40];

        if (len != 36)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i] == '_' ? '-' : s[i];
                if (c != '-' && !isxdigit((unsigned char)c))
                        return false;
                tmp[i] = c;
        }
        copy_n(dst, cap, tmp, len);
        return true;
}

/* A container component: "<prefix><hex id>.scope" (systemd) or a bare hex id (cgroupfs).
 * Fills id and runtime; false when the component is not one. */
static bool take_container(const char *c, char *id, size_t idcap, char *rt, size_t rtcap)
{
        static const struct {
                const char *prefix, *runtime;
        } pre[] = {{"cri-containerd-", "containerd"},
                   {"crio-", "cri-o"},
                   {"cri-dockerd-", "docker"},
                   {"docker-", "docker"}};
        size_t len = strlen(c);

        if (has_suffix(c, ".scope")) {
                len -= strlen(".scope");
                for (size_t i = 0; i < ARRAY_SIZE(pre); i++) {
                        size_t pl = strlen(pre[i].prefix);
                        if (has_prefix(c, pre[i].prefix) && all_hex(c + pl, len - pl)) {
                                copy_n(id, idcap, c + pl, len - pl);
                                copy_n(rt, rtcap, pre[i].runtime, strlen(pre[i].runtime));
                                return true;
                        }
                }
                return false;
        }
        if (len >= 12 && len <= 64 && all_hex(c, len)) { /* cgroupfs driver */
                copy_n(id, idcap, c, len);
                rt[0] = '\0';
                return true;
        }
        return false;
}

/* Split path at '/' into comps (empty components skipped). */
static size_t split(const char *path, char comps[][COMP_LEN], size_t max)
{
        size_t n = 0;

        while (*path && n < max) {
                const char *e;
                while (*path == '/')
                        path++;
                if (!*path)
                        break;
                e = strchr(path, '/');
                if (!e)
                        e = path + strlen(path);
                copy_n(comps[n++], COMP_LEN, path, (size_t)(e - path));
                path = e;
        }
        return n;
}

static bool classify_pod(char comps[][COMP_LEN], size_t n, workload_owner *o)
{
        bool kube = false;

        for (size_t i = 0; i < n; i++) {
                const char *c = comps[i], *p;

                if (strstr(c, "kubepods"))
                        kube = true;
                if (!kube)
                        continue;
                if (strstr(c, "besteffort"))
                        snprintf(o->qos, sizeof(o->qos), "besteffort");
                else if (strstr(c, "burstable"))
                        snprintf(o->qos, sizeof(o->qos), "burstable");
                /* systemd driver: "...-pod<uid>.slice"; cgroupfs: "pod<uid>" */
                p = strstr(c, "-pod");
                if (p && has_suffix(c, ".slice"))
                        p += 4;
                else if (has_prefix(c, "pod"))
                        p = c + 3;
                else
                        continue;
                if (!take_uid(o->id, sizeof(o->id), p,
                              strlen(p) - (has_suffix(p, ".slice") ? strlen(".slice") : 0)))
                        continue;
                o->kind = WL_OWNER_POD;
                if (!o->qos[0])
                        snprintf(o->qos, sizeof(o->qos), "guaranteed");
                if (i + 1 < n)
                        take_container(comps[i + 1], o->container_id, sizeof(o->container_id),
                                       o->runtime, sizeof(o->runtime));
                return true;
        }
        return false;
}

static bool classify_slurm(char comps[][COMP_LEN], size_t n, workload_owner *o)
{
        bool slurm = false;

        for (size_t i = 0; i < n; i++) {
                const char *c = comps[i];
                size_t len;

                if (has_prefix(c, "slurm"))
                        slurm = true; /* slurm, slurm_<node>, slurmstepd.scope */
                if (!slurm || !has_prefix(c, "job_"))
                        continue;
                len = strlen(c + 4);
                if (!len || len > 20 || strspn(c + 4, "0123456789") != len)
                        continue;
                o->kind = WL_OWNER_SLURM;
                copy_n(o->id, sizeof(o->id), c + 4, len);
                if (i + 1 < n && has_prefix(comps[i + 1], "step_"))
                        copy_n(o->step, sizeof(o->step), comps[i + 1] + 5,
                               strlen(comps[i + 1] + 5));
                return true;
        }
        return false;
}

static bool classify_docker(char comps[][COMP_LEN], size_t n, workload_owner *o)
{
        for (size_t i = 0; i < n; i++) {
                const char *c = comps[i];
                bool sd = has_prefix(c, "docker-") && has_suffix(c, ".scope");
                bool fs = strcmp(c, "docker") == 0 && i + 1 < n;

                if (!sd && !fs)
                        continue;
                if (!take_container(fs ? comps[i + 1] : c, o->id, sizeof(o->id), o->runtime,
                                    sizeof(o->runtime)))
                        continue;
                o->kind = WL_OWNER_DOCKER;
                snprintf(o->runtime, sizeof(o->runtime), "docker");
                return true;
        }
        return false;
}

static bool classify_unit(char comps[][COMP_LEN], size_t n, workload_owner *o)
{
        const char *scope = NULL;

        for (size_t i = n; i-- > 0;) {
                if (has_suffix(comps[i], ".service")) {
                        o->kind = WL_OWNER_UNIT;
                        copy_n(o->id, sizeof(o->id), comps[i], strlen(comps[i]));
                        return true;
                }
                if (!scope && has_suffix(comps[i], ".scope"))
                        scope = comps[i];
        }
        if (!scope)
                return false;
        o->kind = WL_OWNER_UNIT;
        copy_n(o->id, sizeof(o->id), scope, strlen(scope));
        return true;
}

/* Rank of what a path gives: pod 4, Slurm 3, Docker 2, unit 1, nothing 0. */
static int classify(const char *path, workload_owner *o)
{
        char comps[COMP_MAX][COMP_LEN];
        size_t n = split(path, comps, COMP_MAX);

        memset(o, 0, sizeof(*o));
        if (classify_pod(comps, n, o))
                return 4;
        memset(o, 0, sizeof(*o));
        if (classify_slurm(comps, n, o))
                return 3;
        memset(o, 0, sizeof(*o));
        if (classify_docker(comps, n, o))
                return 2;
        memset(o, 0, sizeof(*o));
        if (classify_unit(comps, n, o))
                return 1;
        memset(o, 0, sizeof(*o));
        return 0;
}

int workload_parse_cgroup(const char *text, workload_owner *out, char *path, size_t pathlen)
{
        workload_owner best, cur;
        char best_path[COMP_LEN] = "";
        int best_rank = -1;
        const char *line = text;

        memset(&best, 0, sizeof(best));
        while (line && *line) {
                const char *nl = strchr(line, '\n'), *c1, *c2;
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                char p[COMP_LEN];
                int rank;

                /* "hierarchy-ID:controller-list:cgroup-path"; the path may contain ':' */
                c1 = memchr(line, ':', len);
                c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
                if (c1 && c2 && c1 > line && strspn(line, "0123456789") == (size_t)(c1 - line) &&
                    c2[1] == '/') {
                        copy_n(p, sizeof(p), c2 + 1, len - (size_t)(c2 + 1 - line));
                        rank = classify(p, &cur);
                        if (rank > best_rank) {
                                best_rank = rank;
                                best = cur;
                                snprintf(best_path, sizeof(best_path), "%s", p);
                        }
                }
                line = nl ? nl + 1 : NULL;
        }
        if (best_rank < 0)
                return -EBADMSG;
        *out = best;
        if (path && pathlen)
                snprintf(path, pathlen, "%s", best_path);
        return 0;
}

int workload_read_owner(const char *proc_root, unsigned pid, workload_owner *out, char *path,
                        size_t pathlen, char *comm, size_t commlen)
{
        char fn[4096];
        _cleanup_free_ char *text = NULL, *ctext = NULL;
        size_t len = 0;
        int r;

        if (!proc_root || !out || pid == 0)
                return -EINVAL;
        if (snprintf(fn, sizeof(fn), "%s/%u/cgroup", proc_root, pid) >= (int)sizeof(fn))
                return -ENAMETOOLONG;
        r = file_read_all(fn, CGROUP_FILE_MAX, &text, &len);
        if (r == -ENOTDIR)
                r = -ENOENT;
        if (r < 0)
                return r;
        r = workload_parse_cgroup(text, out, path, pathlen);
        if (r < 0)
                return r;
        if (comm && commlen) {
                comm[0] = '\0';
                snprintf(fn, sizeof(fn), "%s/%u/comm", proc_root, pid);
                if (file_read_all(fn, 256, &ctext, &len) == 0) {
                        size_t k = strcspn(ctext, "\n");
                        copy_n(comm, commlen, ctext, k);
                }
        }
        return 0;
}
