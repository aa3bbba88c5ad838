/* The flyctl double's `fly` / `flyctl`: a client of the zygote server (tests/zygote.py).
 *
 * It asks the server beside it to fork a worker that runs the double with this process's
 * argv, environment, working folder, umask, signal dispositions and fds 0, 1, 2 (protocol:
 * tests/zygote.py's docstring), forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to
 * the worker's process group (or the worker alone: see "to_group"), and ends as the worker
 * did (its exit code, or its signal).
 *
 * Configuration: the file ".zygote" in this executable's folder, two lines:
 *     socket=<path of the server's socket>
 *     fallback=<folder holding the Python launchers, one per name (fly, flyctl)>
 * (no file: the fallback is ".python" beside this executable).
 * Any failure before the server has forked a worker (no file, no server, a stale socket, a
 * declined request) execs the Python launcher of this name in the fallback folder: the call
 * then runs as a fresh Python, as it did before the zygote.  Compiled by
 * tests/flyctl_double/launcher.py with `cc -O2`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const int FORWARDED[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define NFORWARDED (sizeof FORWARDED / sizeof FORWARDED[0])

static volatile sig_atomic_t worker_pid = 0;
static volatile sig_atomic_t to_group = 0; /* we lead our own process group */
static volatile sig_atomic_t pending[65];

static char fallback_path[PATH_MAX];
static char *const *saved_argv;

static void forward(int sig) {
    int saved = errno;
    pid_t pid = worker_pid;
    if (pid > 0 && to_group)
        killpg(pid, sig);
    else if (pid > 0)
        kill(pid, sig);
    else
        pending[sig] = 1;
    errno = saved;
}

/* Run the call as a fresh Python instead (nothing has run yet). */
static void fall_back(void) {
    for (size_t i = 0; i < NFORWARDED; i++) /* what arrived meanwhile ends us, as it would */
        if (pending[FORWARDED[i]]) {         /* have ended a Python still starting */
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, FORWARDED[i]);
            signal(FORWARDED[i], SIG_DFL);
            sigprocmask(SIG_UNBLOCK, &set, NULL);
            raise(FORWARDED[i]);
        }
    if (fallback_path[0]) {
        execv(fallback_path, saved_argv);
        fprintf(stderr, "fly (zygote client): cannot exec %s: %s\n", fallback_path,
                strerror(errno));
    } else {
        fprintf(stderr, "fly (zygote client): no server and no fallback launcher\n");
    }
    _exit(127);
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 8 bytes from the server: 1 read, 0 EOF (or an error) first. */
static int read_reply(int fd, char tag[4], int32_t *value) {
    unsigned char buf[8];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
    memcpy(tag, buf, 4);
    *value = (int32_t)((uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16 |
                       (uint32_t)buf[7] << 24);
    return 1;
}

static void put32(char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (char)(v >> (8 * i));
}

static void put64(char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (8 * i));
}

/* dirname(/proc/self/exe)/.zygote -> socket path + the fallback launcher of our name. */
static int read_config(struct sockaddr_un *addr) {
    char exe[PATH_MAX], conf[PATH_MAX + 16], line[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = 0;
    const char *name = slash + 1;
    /* the fallback unless the file says otherwise: .python/<our name> beside us */
    snprintf(fallback_path, sizeof fallback_path, "%.2000s/.python/%.200s", exe, name);
    snprintf(conf, sizeof conf, "%s/.zygote", exe);
    FILE *f = fopen(conf, "re");
    if (!f)
        return -1;
    int have_socket = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "fallback=", 9) == 0) {
            snprintf(fallback_path, sizeof fallback_path, "%.3800s/%.200s", line + 9, name);
        } else if (strncmp(line, "socket=", 7) == 0 &&
                   strlen(line + 7) < sizeof addr->sun_path) {
            strcpy(addr->sun_path, line + 7);
            have_socket = 1;
        }
    }
    fclose(f);
    return have_socket ? 0 : -1;
}

static int fd_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

/* Header + payload (tests/zygote.py) in one malloc'd buffer. */
static char *build_request(int argc, char **argv, uint32_t fdmask, uint64_t ignored,
                           uint64_t blocked, size_t *len_out) {
    size_t payload = 0;
    uint32_t envc = 0;
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    const char *arg0 = execfn && *execfn ? execfn : argv[0];
    payload += strlen(arg0) + 1;
    for (int i = 1; i < argc; i++)
        payload += strlen(argv[i]) + 1;
    for (char **e = environ; *e; e++, envc++)
        payload += strlen(*e) + 1;
    size_t total = 40 + payload;
    char *buf = malloc(total);
    if (!buf)
        return NULL;
    mode_t mask = umask(022);
    umask(mask);
    memcpy(buf, "ZYG1", 4);
    put32(buf + 4, (uint32_t)payload);
    put32(buf + 8, (uint32_t)argc);
    put32(buf + 12, envc);
    put32(buf + 16, (uint32_t)mask);
    put32(buf + 20, fdmask);
    put64(buf + 24, ignored);
    put64(buf + 32, blocked);
    char *p = buf + 40;
    size_t l = strlen(arg0) + 1; /* argv[0]: the path exec'd, as the kernel gives a script */
    memcpy(p, arg0, l);
    p += l;
    for (int i = 1; i < argc; i++) {
        l = strlen(argv[i]) + 1;
        memcpy(p, argv[i], l);
        p += l;
    }
    for (char **e = environ; *e; e++) {
        l = strlen(*e) + 1;
        memcpy(p, *e, l);
        p += l;
    }
    *len_out = total;
    return buf;
}

/* End exactly as the worker did. */
static void end_like(int status) {
    if (WIFEXITED(status))
        exit(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none); /* the worker's core, if any, was its own */
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        exit(128 + sig);
    }
    exit(1);
}

int main(int argc, char **argv) {
    saved_argv = argv;
    if (argc < 1)
        _exit(127);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (read_config(&addr) != 0)
        fall_back();

    /* what the worker inherits as a fresh process would: ignored signals, the mask */
    uint64_t ignored = 0, blocked = 0;
    sigset_t entry_mask;
    sigprocmask(SIG_BLOCK, NULL, &entry_mask);
    for (int sig = 1; sig <= 64; sig++) {
        struct sigaction old;
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &old) == 0 &&
            old.sa_handler == SIG_IGN)
            ignored |= 1ULL << (sig - 1);
        if (sigismember(&entry_mask, sig) == 1)
            blocked |= 1ULL << (sig - 1);
    }

    int fds[5], nfds = 0;
    uint32_t fdmask = 0;
    for (int fd = 0; fd < 3; fd++)
        if (fd_open(fd)) {
            fds[nfds++] = fd;
            fdmask |= 1u << fd;
        }
    /* Who gets what we get. Leading our own group (the product starts fly with setsid and
     * signals its group), a signal meant the group: the worker's group gets it, so the
     * double's remote command does, as it did when it was in fly's group. Otherwise (a
     * caller's child in the caller's group) a signal meant this process: the worker alone. */
    to_group = getpgrp() == getpid();
    if (to_group)
        fdmask |= 1u << 8;
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0)
        fall_back();
    fds[nfds++] = cwd;
    fdmask |= 1u << 3;
    int exe = open("/proc/self/exe", O_PATH | O_CLOEXEC);
    if (exe >= 0) {
        fds[nfds++] = exe;
        fdmask |= 1u << 4;
    }

    size_t len;
    char *req = build_request(argc, argv, fdmask, ignored, blocked, &len);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!req || sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0)
        fall_back();

    /* forwarders first: a signal before the worker's pid is known is sent once it is */
    for (size_t i = 0; i < NFORWARDED; i++) {
        if (ignored & (1ULL << (FORWARDED[i] - 1)))
            continue; /* ignored here: ignored by the worker too */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = forward;
        sigfillset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(FORWARDED[i], &sa, NULL);
    }

    size_t first = len < 65536 ? len : 65536;
    struct iovec iov = {req, first};
    union {
        char buf[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    ssize_t sent;
    do
        sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent < 0 || write_all(sock, req + sent, len - (size_t)sent) != 0)
        fall_back();
    free(req);
    close(cwd);
    if (exe >= 0)
        close(exe);

    char tag[4];
    int32_t value;
    if (!read_reply(sock, tag, &value) || memcmp(tag, "PID", 4) != 0 || value <= 0) {
        close(sock);
        fall_back(); /* declined, or gone before forking: nothing ran */
    }
    /* the worker runs: pass on what arrived meanwhile, then forward as it comes */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    worker_pid = value;
    for (size_t i = 0; i < NFORWARDED; i++)
        if (pending[FORWARDED[i]]) {
            pending[FORWARDED[i]] = 0;
            if (to_group)
                killpg(value, FORWARDED[i]);
            else
                kill(value, FORWARDED[i]);
        }
    sigprocmask(SIG_SETMASK, &old, NULL);

    if (!read_reply(sock, tag, &value) || memcmp(tag, "EXIT", 4) != 0) {
        fprintf(stderr, "fly (zygote client): the zygote server went away during the call\n");
        exit(1);
    }
    end_like(value);
    return 1;
}
