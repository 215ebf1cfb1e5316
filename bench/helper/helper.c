/* The child side of the grace-init benchmark: runs under the init being measured.
 *
 * Protocol: fd 3 is a pipe to the harness (every message is one `struct msg`), fd 4 a pipe from it.
 * Timestamps are CLOCK_MONOTONIC in nanoseconds, comparable with the harness's own readings.
 *
 *   helper wait [reply] [ignore-term]   report ready, then count every signal received; with `reply`, answer
 *                                       each SIGUSR1 with its arrival time; SIGUSR2 is a probe, always answered;
 *                                       SIGTERM exits 0 (or is ignored with `ignore-term`).
 *                                       Commands on fd 4: 'c' SIGNO -> the count of that signal so far.
 *   helper orphans N BATCHES            BATCHES times: a middle process forks N children that exit at once and
 *                                       stay zombies; on the harness's go it exits, so the N zombies are
 *                                       re-parented to the init together. Then behaves as `wait`.
 *   helper storm MILLISECONDS           forks as fast as it can for that long, each fork a double fork whose
 *                                       grandchild exits as an orphan; reports the count, then behaves as `wait`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPORT 3
#define COMMAND 4

struct msg {
    int32_t kind;   /* 'R' ready, a signal number, 'C' count, 'O' orphans ready, 'S' storm done, 'E' error */
    int32_t pad;
    uint64_t value;
    uint64_t ns;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void send_msg(int32_t kind, uint64_t value, uint64_t ns) {
    struct msg m = {kind, 0, value, ns};
    ssize_t n;
    do {
        n = write(REPORT, &m, sizeof m);
    } while (n < 0 && errno == EINTR);
}

static int read_byte(int fd, unsigned char *c) {
    for (;;) {
        ssize_t n = read(fd, c, 1);
        if (n == 1) return 1;
        if (n < 0 && errno == EINTR) continue;
        return 0;
    }
}

static int wait_loop(int reply, int ignore_term) {
    static uint64_t counts[_NSIG];
    sigset_t set;
    sigemptyset(&set);
    int waited[] = {SIGUSR1, SIGUSR2, SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGWINCH, SIGALRM, SIGCONT, SIGURG,
                    SIGPWR, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ};
    for (size_t i = 0; i < sizeof waited / sizeof waited[0]; i++) {
        if (waited[i] == SIGTERM && ignore_term) continue;
        sigaddset(&set, waited[i]);
    }
    for (int s = SIGRTMIN; s <= SIGRTMIN + 4; s++) sigaddset(&set, s);
    if (ignore_term) signal(SIGTERM, SIG_IGN);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        send_msg('E', (uint64_t)errno, now_ns());
        return 1;
    }
    send_msg('R', (uint64_t)getpid(), now_ns());
    struct pollfd fds[2] = {{sfd, POLLIN, 0}, {COMMAND, POLLIN, 0}};
    int nfds = 2;
    for (;;) {
        if (poll(fds, nfds, -1) < 0) continue;
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo info;
            if (read(sfd, &info, sizeof info) == sizeof info) {
                uint64_t t = now_ns();
                int s = (int)info.ssi_signo;
                if (s > 0 && s < _NSIG) counts[s]++;
                if (s == SIGTERM) return 0;
                if (s == SIGUSR1 && reply) send_msg(SIGUSR1, counts[SIGUSR1], t);
                if (s == SIGUSR2) send_msg(SIGUSR2, counts[SIGUSR1], t);
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            unsigned char cmd, arg;
            if (!read_byte(COMMAND, &cmd)) {
                nfds = 1; /* the harness closed its end: signals only from now on */
                continue;
            }
            if (cmd == 'c' && read_byte(COMMAND, &arg)) {
                send_msg('C', arg < _NSIG ? counts[arg] : 0, now_ns());
            } else if (cmd == 'x') {
                return 0;
            }
        }
    }
}

static int orphans(long n, long batches) {
    for (long b = 0; b < batches; b++) {
        pid_t middle = fork();
        if (middle < 0) {
            send_msg('E', (uint64_t)errno, now_ns());
            return 1;
        }
        if (middle == 0) {
            pid_t *kids = malloc(sizeof(pid_t) * (size_t)n);
            long made = 0;
            for (; made < n; made++) {
                pid_t k = fork();
                if (k == 0) _exit(0);
                if (k < 0) break;
                kids[made] = k;
            }
            /* Wait until every child is a zombie, without reaping it. */
            for (long i = 0; i < made; i++) {
                siginfo_t info;
                while (waitid(P_PID, (id_t)kids[i], &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
                }
            }
            send_msg('O', (uint64_t)made, now_ns());
            unsigned char go;
            read_byte(COMMAND, &go);
            _exit(0);
        }
        while (waitpid(middle, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    return wait_loop(0, 0);
}

static int storm(long ms) {
    uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
    uint64_t made = 0, failed = 0;
    while (now_ns() < end) {
        pid_t c = fork();
        if (c == 0) {
            pid_t g = fork();
            (void)g;
            _exit(0);
        }
        if (c < 0) {
            failed++;
            usleep(1000);
            continue;
        }
        while (waitpid(c, NULL, 0) < 0 && errno == EINTR) {
        }
        made++;
    }
    send_msg('S', made, now_ns());
    send_msg('F', failed, now_ns());
    return wait_loop(0, 0);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (strcmp(argv[1], "wait") == 0) {
        int reply = 0, ignore_term = 0;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "reply") == 0) reply = 1;
            if (strcmp(argv[i], "ignore-term") == 0) ignore_term = 1;
        }
        return wait_loop(reply, ignore_term);
    }
    if (strcmp(argv[1], "orphans") == 0 && argc >= 4) return orphans(atol(argv[2]), atol(argv[3]));
    if (strcmp(argv[1], "storm") == 0 && argc >= 3) return storm(atol(argv[2]));
    return 2;
}
