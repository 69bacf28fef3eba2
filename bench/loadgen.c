/*
 * loadgen: load generator, echo/sink/source upstream and start-up timer for bench/ (issue #7).
 *
 * One single-threaded epoll program, compiled by bench/run.sh with `cc -O2`, so the generator
 * is never the slowest party (bench/RESULTS.md shows `direct` far above every proxy).
 *
 *   loadgen server  [--port P] [--http-port P]
 *       Echo upstream on 127.0.0.1 (prints {"echo":P,"http":P} once listening). A connection
 *       whose first byte is '!' is an rr request: 64 bytes are echoed, then the server sends
 *       its FIN (it closes first) and closes at the client's. A connection
 *       whose first byte is '#' carries a 64-byte command instead of echo data:
 *         "#BULKUP " len seed   -> the server reads len bytes, checks every byte against the
 *                                  pattern, answers "#RESULT " received mismatches
 *         "#BULKDN " len seed   -> the server sends len pattern bytes
 *       The http port answers every request head with a fixed 64-byte body (keep-alive).
 *
 *   loadgen client --mode rr|pingpong|bulkup|bulkdown|idle --proto plain|socks5|socks4|connect
 *                  [--proxy HOST:PORT] --target HOST:PORT [--conns N] [--duration S] [--warmup S]
 *                  [--bytes N] [--watch-pid PID] [--timeout S] [--src-ips N] [--close-first server|client]
 *       rr:       connect, handshake, 64-byte request, 64-byte echo, close; N in parallel.
 *                 --close-first server (default): the server's FIN must come through the proxy
 *                 after the reply, then the client closes; the TIME_WAIT sockets then sit on the
 *                 two listening ports. With `client`, the client closes after the reply, and every
 *                 proxy leaves one TIME_WAIT per connection on an ephemeral port: connect()'s port
 *                 search then costs 5-30 % of a proxy's CPU depending on how full the machine's
 *                 TIME_WAIT table is from the contestant before (bench/RESULTS.md).
 *       pingpong: N long-lived tunnels, 64-byte request/echo in a loop
 *       bulkup / bulkdown: N tunnels, each moves --bytes, every byte checked
 *       idle:     hold N tunnels (each proven with one echo), report proxy memory per tunnel
 *       plain: no handshake, to --proxy (a TCP reverse proxy) or, without it, to --target (direct).
 *       Prints one JSON line. --watch-pid: CPU time, RSS, PSS and peak RSS of that process and
 *       its descendants, sampled over the measured window (read from /proc).
 *
 *   loadgen procstat PID          the same /proc numbers, once, as JSON
 *   loadgen startup --port P [--ready-file F] [--runs N] -- CMD ARGS...
 *       exec CMD, poll until 127.0.0.1:P accepts (and F exists), kill the process tree; N times.
 *
 * Every loop is bounded: by --duration/--timeout, by an error cap, and by a hard deadline.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MSG 64                    /* request and reply size of rr / pingpong */
#define PERIOD 1048573u           /* pattern period (prime): a dropped or repeated block shows */
#define CHUNK (256u * 1024u)      /* largest read/write of a bulk stream */
#define MAXCONNS 20000
#define HIST_US 1000000           /* latency histogram: 1 us buckets up to 1 s, then overflow */
#define MAX_ERRORS 1000           /* stop early: a broken contestant is not measured for long */

static uint8_t *pattern;          /* PERIOD + CHUNK bytes: any CHUNK from offset < PERIOD is contiguous */
static uint8_t rbuf[CHUNK];

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "loadgen: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static void make_pattern(void) {
  pattern = malloc(PERIOD + CHUNK);
  if (!pattern) die("out of memory");
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (uint32_t i = 0; i < PERIOD; i++) pattern[i] = (uint8_t)(xorshift(&s) >> 24);
  memcpy(pattern + PERIOD, pattern, CHUNK);
}

/* Bytes of the stream with this seed from offset `off` (at most CHUNK of them are contiguous). */
static const uint8_t *pattern_at(uint64_t seed, uint64_t off) { return pattern + (seed + off) % PERIOD; }

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}


static void parse_hostport(const char *s, struct sockaddr_in *sa) {
  char host[64];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host) die("bad HOST:PORT %s", s);
  memcpy(host, s, colon - s);
  host[colon - s] = 0;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) die("bad IPv4 address %s", host);
}

/* ------------------------------------------------------------------ /proc of a process tree */

struct procstat {
  double cpu_s;      /* utime+stime (+ reaped children) of every process in the tree */
  double sys_s;      /* the stime part of cpu_s: in the kernel */
  long rss_kib, pss_kib, hwm_kib;
  long anon_kib; /* Pss_Anon + Pss_Shmem: the process's own memory, shared pages counted once */
  int nprocs;
};

static long status_field(int pid, const char *name) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  long v = 0;
  size_t n = strlen(name);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, name, n) == 0 && line[n] == ':') {
      v = atol(line + n + 1);
      break;
    }
  fclose(f);
  return v;
}

static void pss_of(int pid, long *pss, long *anon) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
  FILE *f = fopen(path, "r");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "Pss:", 4) == 0) *pss += atol(line + 4);
    else if (strncmp(line, "Pss_Anon:", 9) == 0) *anon += atol(line + 9);
    else if (strncmp(line, "Pss_Shmem:", 10) == 0) *anon += atol(line + 10);
  }
  fclose(f);
}

/* ppid and CPU ticks from /proc/PID/stat (the command name may hold spaces and parens). */
static int read_stat(int pid, int *ppid, double *ticks, double *sys_ticks) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  char state;
  unsigned long long ut, st;
  long long cut, cst;
  int pp;
  if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &state, &pp, &ut, &st, &cut, &cst) != 6)
    return -1;
  *ppid = pp;
  *ticks = (double)(ut + st + cut + cst);
  if (sys_ticks) *sys_ticks = (double)(st + cst);
  return 0;
}

static int tree_pids(int root, int *out, int max) {
  static int pids[65536], ppids[65536];
  int n = 0;
  DIR *d = opendir("/proc");
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 65536) {
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    int pid = atoi(e->d_name), pp;
    double t;
    if (read_stat(pid, &pp, &t, NULL) == 0) {
      pids[n] = pid;
      ppids[n] = pp;
      n++;
    }
  }
  closedir(d);
  int m = 0;
  out[m++] = root;
  for (int i = 0; i < m && m < max; i++)
    for (int j = 0; j < n && m < max; j++)
      if (ppids[j] == out[i]) out[m++] = pids[j];
  return m;
}

static struct procstat proc_tree(int root) {
  struct procstat ps = {0};
  if (root <= 0) return ps;
  int pids[4096];
  int m = tree_pids(root, pids, 4096);
  double hz = (double)sysconf(_SC_CLK_TCK);
  for (int i = 0; i < m; i++) {
    int pp;
    double t, sys;
    if (read_stat(pids[i], &pp, &t, &sys) != 0) continue;
    ps.cpu_s += t / hz;
    ps.sys_s += sys / hz;
    ps.rss_kib += status_field(pids[i], "VmRSS");
    ps.hwm_kib += status_field(pids[i], "VmHWM");
    pss_of(pids[i], &ps.pss_kib, &ps.anon_kib);
    ps.nprocs++;
  }
  return ps;
}

static void print_procstat(const char *key, struct procstat ps) {
  printf("\"%s\":{\"cpu_s\":%.3f,\"rss_kib\":%ld,\"pss_kib\":%ld,\"anon_kib\":%ld,\"hwm_kib\":%ld,\"nprocs\":%d}", key, ps.cpu_s,
         ps.rss_kib, ps.pss_kib, ps.anon_kib, ps.hwm_kib, ps.nprocs);
}

/* ------------------------------------------------------------------ server */

enum { SV_FIRST, SV_ECHO, SV_ONCE, SV_BULKUP, SV_BULKDN, SV_DONE, SV_HTTP };

struct sconn {
  int fd, state, want_out, close_after, fin_after; /* fin_after: shutdown(SHUT_WR) once pend is flushed */
  uint8_t head[MSG];
  size_t headlen;
  uint64_t len, seed, pos, bad;
  uint8_t *pend; /* unsent bytes (echo / http / result) */
  size_t pendlen, pendoff;
  char *hbuf;    /* http: request bytes not yet answered */
  size_t hlen;
};

static int epfd;

static void ep_set(int fd, void *ptr, int out) {
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = ptr};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) != 0) die("epoll_ctl mod: %s", strerror(errno));
}

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) die("bind %d: %s", port, strerror(errno));
  if (listen(fd, 4096) != 0) die("listen: %s", strerror(errno));
  return fd;
}

static int port_of(int fd) {
  struct sockaddr_in sa;
  socklen_t l = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &l);
  return ntohs(sa.sin_port);
}

static void sclose(struct sconn *c) {
  close(c->fd);
  free(c->pend);
  free(c->hbuf);
  free(c);
}

/* Queue bytes toward the client; returns -1 if the connection died. */
static int squeue(struct sconn *c, const uint8_t *p, size_t n) {
  if (c->pendlen == c->pendoff) {
    ssize_t w = write(c->fd, p, n);
    if (w < 0 && errno != EAGAIN) return -1;
    if (w < 0) w = 0;
    if ((size_t)w == n) return 0;
    p += w;
    n -= (size_t)w;
    free(c->pend);
    c->pend = malloc(n);
    memcpy(c->pend, p, n);
    c->pendlen = n;
    c->pendoff = 0;
  } else {
    uint8_t *np = malloc(c->pendlen - c->pendoff + n);
    memcpy(np, c->pend + c->pendoff, c->pendlen - c->pendoff);
    memcpy(np + c->pendlen - c->pendoff, p, n);
    c->pendlen = c->pendlen - c->pendoff + n;
    c->pendoff = 0;
    free(c->pend);
    c->pend = np;
  }
  if (!c->want_out) {
    c->want_out = 1;
    ep_set(c->fd, c, 1);
  }
  return 0;
}

static const char HTTP_BODY[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static char http_reply[256];
static size_t http_reply_len;

/* Answer every complete request head in hbuf (GET without body: what wrk and the proxies send). */
static int serve_http(struct sconn *c) {
  size_t start = 0;
  for (;;) {
    char *end = memmem(c->hbuf + start, c->hlen - start, "\r\n\r\n", 4);
    if (!end) break;
    size_t headlen = (size_t)(end + 4 - (c->hbuf + start));
    /* HTTP/1.0 or "Connection: close" (tinyproxy sends it upstream): answer, then close. */
    char *line_end = memchr(c->hbuf + start, '\r', headlen);
    if (line_end - (c->hbuf + start) >= 8 && memcmp(line_end - 8, "HTTP/1.0", 8) == 0) c->close_after = 1;
    if (memmem(c->hbuf + start, headlen, "onnection: close", 16) || memmem(c->hbuf + start, headlen, "onnection: Close", 16))
      c->close_after = 1;
    if (squeue(c, (const uint8_t *)http_reply, http_reply_len) != 0) return -1;
    start += headlen;
    if (c->close_after) break;
  }
  memmove(c->hbuf, c->hbuf + start, c->hlen - start);
  c->hlen -= start;
  if (c->hlen > 16384) return -1;
  if (c->close_after && c->pendlen == c->pendoff) return -1; /* all written: close now */
  return 0;
}

static int sv_bulkdn_fill(struct sconn *c) {
  while (c->pos < c->len) {
    size_t n = c->len - c->pos > CHUNK ? CHUNK : (size_t)(c->len - c->pos);
    ssize_t w = write(c->fd, pattern_at(c->seed, c->pos), n);
    if (w < 0) {
      if (errno == EAGAIN) return 0;
      return -1;
    }
    c->pos += (uint64_t)w;
    if ((size_t)w < n) return 0;
  }
  return 0;
}

/* Returns -1 to close the connection. */
static int sv_readable(struct sconn *c) {
  ssize_t r = read(c->fd, rbuf, sizeof rbuf);
  if (r == 0) return -1;
  if (r < 0) return errno == EAGAIN ? 0 : -1;
  size_t n = (size_t)r, off = 0;
  if (c->state == SV_HTTP) {
    c->hbuf = realloc(c->hbuf, c->hlen + n);
    memcpy(c->hbuf + c->hlen, rbuf, n);
    c->hlen += n;
    return serve_http(c);
  }
  if (c->state == SV_FIRST) {
    if (rbuf[0] == '!') {
      c->state = SV_ONCE;
    } else if (rbuf[0] != '#') {
      c->state = SV_ECHO;
    } else {
      size_t take = MSG - c->headlen < n ? MSG - c->headlen : n;
      memcpy(c->head + c->headlen, rbuf, take);
      c->headlen += take;
      off = take;
      if (c->headlen < MSG) return 0;
      c->len = get64(c->head + 8);
      c->seed = get64(c->head + 16);
      c->pos = 0;
      if (memcmp(c->head, "#BULKUP ", 8) == 0) {
        c->state = SV_BULKUP;
      } else if (memcmp(c->head, "#BULKDN ", 8) == 0) {
        c->state = SV_BULKDN;
        c->want_out = 1;
        ep_set(c->fd, c, 1);
        return sv_bulkdn_fill(c);
      } else {
        return -1;
      }
    }
  }
  if (c->state == SV_ECHO) return squeue(c, rbuf, n);
  if (c->state == SV_ONCE) { /* rr: echo one MSG, then the server closes first (FIN after the reply) */
    if (c->pos + n > MSG) return -1;
    c->pos += n;
    if (squeue(c, rbuf, n) != 0) return -1;
    if (c->pos < MSG) return 0;
    c->state = SV_DONE;
    if (c->pendlen > c->pendoff) c->fin_after = 1;
    else shutdown(c->fd, SHUT_WR);
    return 0;
  }
  if (c->state == SV_BULKUP) {
    size_t left = n - off;
    if (c->pos + left > c->len) return -1; /* more than announced */
    if (memcmp(rbuf + off, pattern_at(c->seed, c->pos), left) != 0) {
      for (size_t i = 0; i < left; i++)
        if (rbuf[off + i] != pattern_at(c->seed, c->pos + i)[0]) c->bad++;
    }
    c->pos += left;
    if (c->pos == c->len) {
      uint8_t res[MSG] = "#RESULT ";
      put64(res + 8, c->pos);
      put64(res + 16, c->bad);
      c->state = SV_DONE;
      return squeue(c, res, MSG);
    }
    return 0;
  }
  if (c->state == SV_BULKDN || c->state == SV_DONE) return n > 0 ? -1 : 0; /* nothing expected */
  return 0;
}

static int sv_writable(struct sconn *c) {
  if (c->pendoff < c->pendlen) {
    ssize_t w = write(c->fd, c->pend + c->pendoff, c->pendlen - c->pendoff);
    if (w < 0) return errno == EAGAIN ? 0 : -1;
    c->pendoff += (size_t)w;
    if (c->pendoff < c->pendlen) return 0;
    if (c->close_after) return -1;
    if (c->fin_after) {
      c->fin_after = 0;
      shutdown(c->fd, SHUT_WR);
    }
  }
  if (c->state == SV_BULKDN) {
    if (sv_bulkdn_fill(c) != 0) return -1;
    if (c->pos < c->len) return 0;
  }
  c->want_out = 0;
  ep_set(c->fd, c, 0);
  return 0;
}

static int run_server(int argc, char **argv) {
  int port = 0, http_port = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--http-port") && i + 1 < argc) http_port = atoi(argv[++i]);
    else die("server: unknown argument %s", argv[i]);
  }
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  make_pattern();
  http_reply_len = (size_t)snprintf(http_reply, sizeof http_reply,
                                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                                    strlen(HTTP_BODY), HTTP_BODY);
  epfd = epoll_create1(0);
  int lfd = listen_on(port), hfd = listen_on(http_port);
  static int LECHO = 1, LHTTP = 2;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &LECHO};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.ptr = &LHTTP;
  epoll_ctl(epfd, EPOLL_CTL_ADD, hfd, &ev);
  printf("{\"echo\":%d,\"http\":%d}\n", port_of(lfd), port_of(hfd));
  fflush(stdout);
  struct epoll_event evs[256];
  for (;;) { /* lives until its parent (the bench runner) kills it or dies (PDEATHSIG) */
    int n = epoll_wait(epfd, evs, 256, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    if (getppid() == 1) return 0;
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &LECHO || p == &LHTTP) {
        for (int k = 0; k < 64; k++) {
          int fd = accept4(p == &LECHO ? lfd : hfd, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct sconn *c = calloc(1, sizeof *c);
          c->fd = fd;
          c->state = p == &LECHO ? SV_FIRST : SV_HTTP;
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      struct sconn *c = p;
      int rc = 0;
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) rc = sv_readable(c);
      if (rc == 0 && (evs[i].events & EPOLLOUT)) rc = sv_writable(c);
      if (rc != 0) sclose(c);
    }
  }
}

/* ------------------------------------------------------------------ client */

enum { M_RR, M_PINGPONG, M_BULKUP, M_BULKDN, M_IDLE };
enum { P_PLAIN, P_SOCKS5, P_CONNECT, P_SOCKS4 }; /* plain: no handshake (direct, or a TCP reverse proxy) */
enum { C_FREE, C_CONNECTING, C_GREET, C_SOCKSREP, C_HTTPREP, C_READY, C_ECHO, C_WAITFIN, C_BULKUP, C_BULKDN, C_HELD };

struct cconn {
  int fd, state, want_out, idx;
  uint8_t wbuf[256];
  size_t wlen, woff;
  uint8_t hs[1024];
  size_t hslen;
  uint8_t req[MSG];
  size_t got;
  uint64_t t_conn, t_op, seed, sent, recv, ops;
  uint64_t rng;
};

static struct {
  int mode, proto, conns, src_ips, server_closes;
  double duration_s, warmup_s, timeout_s;
  uint64_t bytes;
  int watch_pid, has_proxy;
  struct sockaddr_in proxy, target;
  char target_str[64];
} cfg;

static struct {
  uint64_t ops, errors, bytes;
  uint64_t window_start, window_end;
  int measuring;
  uint32_t *hist;
  uint64_t hist_over, hist_n;
  char first_error[200];
  uint64_t err_kinds[8];
} st;

enum { E_CONNECT, E_RESET, E_EOF, E_MISMATCH, E_HANDSHAKE, E_TIMEOUT, E_OTHER };
static const char *E_NAMES[] = {"connect", "reset", "eof", "mismatch", "handshake", "timeout", "other"};

static struct cconn *conns;
static int live_conns, ready_conns, done_conns;

static void record_error(struct cconn *c, int kind, const char *what) {
  st.errors++;
  st.err_kinds[kind]++;
  if (!st.first_error[0]) snprintf(st.first_error, sizeof st.first_error, "conn %d: %s (%s)", c->idx, what, strerror(errno));
}

static void cclose(struct cconn *c) {
  if (c->fd >= 0) {
    close(c->fd);
    live_conns--;
  }
  c->fd = -1;
  c->state = C_FREE;
}

static void cfail(struct cconn *c, int kind, const char *what) {
  record_error(c, kind, what);
  cclose(c);
}

/* Write wbuf; the rest waits for EPOLLOUT. Returns -1 on error. */
static int cflush(struct cconn *c) {
  while (c->woff < c->wlen) {
    ssize_t w = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
    if (w < 0) {
      if (errno == EAGAIN) break;
      return -1;
    }
    c->woff += (size_t)w;
  }
  int want = c->woff < c->wlen || c->state == C_BULKUP;
  if (want != c->want_out) {
    c->want_out = want;
    ep_set(c->fd, c, want);
  }
  return 0;
}

static int csend(struct cconn *c, const void *p, size_t n) {
  memcpy(c->wbuf, p, n);
  c->wlen = n;
  c->woff = 0;
  return cflush(c);
}

static int cstart(struct cconn *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  if (fd < 0) {
    record_error(c, E_CONNECT, "socket");
    return -1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (cfg.src_ips > 1) {
    /* Spread client ports over 127.0.0.x: rr makes ~10^4 TIME_WAIT sockets a second. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(xorshift(&c->rng) % (uint64_t)cfg.src_ips));
    bind(fd, (struct sockaddr *)&src, sizeof src);
  }
  c->fd = fd;
  live_conns++;
  c->t_conn = now_ns();
  c->want_out = 1;
  c->state = C_CONNECTING;
  c->hslen = 0;
  c->got = 0;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  const struct sockaddr_in *to = cfg.has_proxy ? &cfg.proxy : &cfg.target;
  if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0 && errno != EINPROGRESS) {
    cfail(c, E_CONNECT, "connect");
    return -1;
  }
  return 0;
}

static void hist_add(uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us < HIST_US) st.hist[us]++;
  else st.hist_over++;
  st.hist_n++;
}

static double hist_pct(double p) {
  if (st.hist_n == 0) return 0;
  uint64_t want = (uint64_t)(p * (double)st.hist_n), acc = 0;
  if (want >= st.hist_n) want = st.hist_n - 1;
  for (int i = 0; i < HIST_US; i++) {
    acc += st.hist[i];
    if (acc > want) return i + 0.5;
  }
  return HIST_US;
}

static int send_request(struct cconn *c) {
  for (int i = 0; i < MSG; i += 8) put64(c->req + i, xorshift(&c->rng));
  c->req[0] = (uint8_t)('a' + c->req[0] % 26); /* never '#': that would be a server command */
  if (cfg.mode == M_RR && cfg.server_closes) c->req[0] = '!'; /* the server closes after its reply */
  c->got = 0;
  c->t_op = now_ns();
  c->state = C_ECHO;
  return csend(c, c->req, MSG);
}

static int start_bulk(struct cconn *c) {
  uint8_t cmd[MSG] = {0};
  memcpy(cmd, cfg.mode == M_BULKUP ? "#BULKUP " : "#BULKDN ", 8);
  c->seed = xorshift(&c->rng) % PERIOD;
  put64(cmd + 8, cfg.bytes);
  put64(cmd + 16, c->seed);
  c->sent = c->recv = 0;
  c->got = 0;
  c->t_op = now_ns();
  c->state = cfg.mode == M_BULKUP ? C_BULKUP : C_BULKDN;
  return csend(c, cmd, MSG);
}

/* The tunnel is up (or the direct connection is). */
static int on_ready(struct cconn *c) {
  if (cfg.mode == M_RR) return send_request(c);
  c->state = C_READY;
  ready_conns++;
  if (c->want_out) {
    c->want_out = 0;
    ep_set(c->fd, c, 0);
  }
  if (cfg.mode == M_IDLE) return send_request(c); /* prove the tunnel with one echo */
  return 0;                                       /* pingpong and bulk wait for every tunnel */
}

static int send_handshake(struct cconn *c) {
  if (cfg.proto == P_PLAIN) return on_ready(c);
  if (cfg.proto == P_SOCKS5) {
    static const uint8_t greet[3] = {5, 1, 0}; /* VER, NMETHODS, NO AUTHENTICATION REQUIRED */
    c->state = C_GREET;
    return csend(c, greet, 3);
  }
  if (cfg.proto == P_SOCKS4) {
    uint8_t req[9] = {4, 1}; /* VN, CD CONNECT, DSTPORT, DSTIP, empty USERID and its NUL */
    memcpy(req + 2, &cfg.target.sin_port, 2);
    memcpy(req + 4, &cfg.target.sin_addr, 4);
    c->state = C_SOCKSREP;
    return csend(c, req, 9);
  }
  char req[160];
  int n = snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", cfg.target_str, cfg.target_str);
  c->state = C_HTTPREP;
  return csend(c, req, (size_t)n);
}

/* Handshake bytes; returns 1 when a step completed, 0 for more, -1 on error. */
static int on_handshake(struct cconn *c, const uint8_t *p, size_t n) {
  if (c->hslen + n > sizeof c->hs) return -1;
  memcpy(c->hs + c->hslen, p, n);
  c->hslen += n;
  if (c->state == C_GREET) {
    if (c->hslen < 2) return 0;
    if (c->hslen > 2 || c->hs[0] != 5 || c->hs[1] != 0) return -1;
    uint8_t req[10] = {5, 1, 0, 1}; /* VER, CMD CONNECT, RSV, ATYP IPv4 */
    memcpy(req + 4, &cfg.target.sin_addr, 4);
    memcpy(req + 8, &cfg.target.sin_port, 2);
    c->hslen = 0;
    c->state = C_SOCKSREP;
    return csend(c, req, 10) == 0 ? 0 : -1;
  }
  if (c->state == C_SOCKSREP && cfg.proto == P_SOCKS4) {
    if (c->hslen < 8) return 0; /* VN 0, CD 90 (granted), DSTPORT, DSTIP */
    if (c->hslen > 8 || c->hs[0] != 0 || c->hs[1] != 90) return -1;
    return 1;
  }
  if (c->state == C_SOCKSREP) {
    if (c->hslen < 5) return 0;
    if (c->hs[0] != 5 || c->hs[1] != 0) return -1;
    size_t need = c->hs[3] == 1 ? 10 : c->hs[3] == 4 ? 22 : c->hs[3] == 3 ? 7 + (size_t)c->hs[4] : 0;
    if (need == 0) return -1;
    if (c->hslen < need) return 0;
    if (c->hslen > need) return -1; /* the echo server never speaks first */
    return 1;
  }
  /* C_HTTPREP */
  uint8_t *end = memmem(c->hs, c->hslen, "\r\n\r\n", 4);
  if (!end) return 0;
  if ((size_t)(end + 4 - c->hs) != c->hslen) return -1;
  if (c->hslen < 12 || memcmp(c->hs, "HTTP/1.", 7) != 0 || memcmp(c->hs + 8, " 200", 4) != 0) return -1;
  return 1;
}

static void op_done(struct cconn *c, uint64_t t_end) {
  if (st.measuring) {
    st.ops++;
    hist_add(t_end - (cfg.mode == M_RR ? c->t_conn : c->t_op));
  }
}

/* Returns -1 if the connection was closed (error or finished rr op). */
static int c_readable(struct cconn *c) {
  size_t cap = c->state == C_BULKDN ? CHUNK : 4096;
  ssize_t r = read(c->fd, rbuf, cap);
  if (r < 0) {
    if (errno == EAGAIN) return 0;
    cfail(c, c->state <= C_HTTPREP ? E_HANDSHAKE : E_RESET, "read");
    return -1;
  }
  if (r == 0 && c->state == C_WAITFIN) { /* rr: the server's FIN came through; now we close */
    cclose(c);
    return -1;
  }
  if (r == 0) {
    errno = 0;
    cfail(c, c->state <= C_HTTPREP ? E_HANDSHAKE : E_EOF, "unexpected EOF");
    return -1;
  }
  size_t n = (size_t)r;
  switch (c->state) {
  case C_GREET:
  case C_SOCKSREP:
  case C_HTTPREP: {
    int rc = on_handshake(c, rbuf, n);
    if (rc < 0) {
      errno = 0;
      cfail(c, E_HANDSHAKE, "bad handshake reply");
      return -1;
    }
    if (rc == 1 && on_ready(c) != 0) {
      cfail(c, E_RESET, "write");
      return -1;
    }
    return 0;
  }
  case C_ECHO: {
    if (c->got + n > MSG || memcmp(rbuf, c->req + c->got, n) != 0) {
      errno = 0;
      cfail(c, E_MISMATCH, "echo differs");
      return -1;
    }
    c->got += n;
    if (c->got < MSG) return 0;
    uint64_t t = now_ns();
    c->ops++;
    if (cfg.mode == M_IDLE) {
      c->state = C_HELD;
      done_conns++;
      return 0;
    }
    op_done(c, t);
    if (cfg.mode == M_RR && cfg.server_closes) {
      c->state = C_WAITFIN;
      return 0;
    }
    if (cfg.mode == M_RR) {
      cclose(c);
      return -1;
    }
    if (send_request(c) != 0) {
      cfail(c, E_RESET, "write");
      return -1;
    }
    return 0;
  }
  case C_BULKDN: {
    if (c->recv + n > cfg.bytes || memcmp(rbuf, pattern_at(c->seed, c->recv), n) != 0) {
      errno = 0;
      cfail(c, E_MISMATCH, "bulk stream differs");
      return -1;
    }
    c->recv += n;
    if (c->recv == cfg.bytes) {
      st.bytes += c->recv;
      done_conns++;
      hist_add(now_ns() - c->t_op);
      cclose(c);
      return -1;
    }
    return 0;
  }
  case C_BULKUP: {
    if (c->got + n > MSG) {
      errno = 0;
      cfail(c, E_MISMATCH, "bulk result too long");
      return -1;
    }
    memcpy(c->hs + c->got, rbuf, n);
    c->got += n;
    if (c->got < MSG) return 0;
    if (memcmp(c->hs, "#RESULT ", 8) != 0 || get64(c->hs + 8) != cfg.bytes || get64(c->hs + 16) != 0) {
      errno = 0;
      cfail(c, E_MISMATCH, "upstream saw different bytes");
      return -1;
    }
    st.bytes += cfg.bytes;
    done_conns++;
    hist_add(now_ns() - c->t_op);
    cclose(c);
    return -1;
  }
  default:
    errno = 0;
    cfail(c, E_OTHER, "unexpected data");
    return -1;
  }
}

static int c_writable(struct cconn *c) {
  if (c->state == C_CONNECTING) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
      errno = err;
      cfail(c, E_CONNECT, "connect");
      return -1;
    }
    if (send_handshake(c) != 0) {
      cfail(c, E_HANDSHAKE, "write");
      return -1;
    }
    return 0;
  }
  if (cflush(c) != 0) {
    cfail(c, E_RESET, "write");
    return -1;
  }
  if (c->state == C_BULKUP && c->woff == c->wlen) {
    while (c->sent < cfg.bytes) {
      size_t n = cfg.bytes - c->sent > CHUNK ? CHUNK : (size_t)(cfg.bytes - c->sent);
      ssize_t w = write(c->fd, pattern_at(c->seed, c->sent), n);
      if (w < 0) {
        if (errno == EAGAIN) return 0;
        cfail(c, E_RESET, "write");
        return -1;
      }
      c->sent += (uint64_t)w;
      if ((size_t)w < n) return 0;
    }
    c->want_out = 0;
    ep_set(c->fd, c, 0);
  }
  return 0;
}

/* Run the event loop until `until_ns` or until stop() says so. */
static void loop(uint64_t until_ns, int (*stop)(void)) {
  struct epoll_event evs[512];
  uint64_t last_scan = now_ns();
  uint64_t op_timeout = (uint64_t)(cfg.timeout_s * 1e9);
  while (!(stop && stop())) {
    uint64_t t = now_ns();
    if (t >= until_ns || st.errors >= MAX_ERRORS) return;
    if (!st.measuring && st.window_start && t >= st.window_start && t < st.window_end) st.measuring = 1;
    if (st.measuring && t >= st.window_end) st.measuring = 0;
    int n = epoll_wait(epfd, evs, 512, 20);
    for (int i = 0; i < n; i++) {
      struct cconn *c = evs[i].data.ptr;
      if (c->fd < 0) continue;
      int rc = 0;
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (c->state == C_CONNECTING && (evs[i].events & (EPOLLERR | EPOLLHUP))) rc = c_writable(c);
        else rc = c_readable(c);
      }
      if (rc == 0 && c->fd >= 0 && (evs[i].events & EPOLLOUT)) c_writable(c);
      if (cfg.mode == M_RR && c->fd < 0 && now_ns() < st.window_end) cstart(c);
    }
    t = now_ns();
    if (t - last_scan > 100000000ull) { /* per-operation deadline */
      last_scan = t;
      for (int i = 0; i < cfg.conns; i++) {
        struct cconn *c = &conns[i];
        if (c->fd < 0) {
          if (cfg.mode == M_RR && t < st.window_end) cstart(c); /* a slot whose connect failed */
          continue;
        }
        /* Bulk streams are bounded by the hard deadline, not by the per-operation one. */
        if (c->state == C_HELD || c->state == C_READY || c->state == C_BULKUP || c->state == C_BULKDN) continue;
        uint64_t since = c->state <= C_HTTPREP ? c->t_conn : c->t_op;
        if (t - since > op_timeout) {
          errno = ETIMEDOUT;
          cfail(c, E_TIMEOUT, "operation timed out");
          if (cfg.mode == M_RR && t < st.window_end) cstart(c);
        }
      }
    }
  }
}

/* rr and pingpong: a warm-up from `start`, then the measured window. */
static void set_window(uint64_t start) {
  st.window_start = start + (uint64_t)(cfg.warmup_s * 1e9);
  st.window_end = st.window_start + (uint64_t)(cfg.duration_s * 1e9);
}

/* Runs through the warm-up, snapshots the proxy and ourselves, then counts until the window ends. */
static void measure_window(struct procstat *before, struct rusage *ru0) {
  loop(st.window_start, NULL);
  *before = proc_tree(cfg.watch_pid);
  getrusage(RUSAGE_SELF, ru0);
  st.measuring = 1;
  loop(st.window_end, NULL);
  st.measuring = 0;
}

static int target_ready;
static int all_ready(void) { return ready_conns + (int)st.errors >= target_ready; }
static int all_done(void) { return done_conns + (int)st.errors >= cfg.conns; }
static int all_done_target(void) { return done_conns + (int)st.errors >= target_ready; }

static void print_common(double seconds) {
  printf("{\"mode\":\"%s\",\"proto\":\"%s\",\"conns\":%d,\"ops\":%llu,\"seconds\":%.4f,\"errors\":%llu",
         (const char *[]){"rr", "pingpong", "bulkup", "bulkdown", "idle"}[cfg.mode],
         (const char *[]){"plain", "socks5", "connect", "socks4"}[cfg.proto], cfg.conns, (unsigned long long)st.ops, seconds,
         (unsigned long long)st.errors);
  printf(",\"error_kinds\":{");
  int first = 1;
  for (int k = 0; k < 7; k++)
    if (st.err_kinds[k]) {
      printf("%s\"%s\":%llu", first ? "" : ",", E_NAMES[k], (unsigned long long)st.err_kinds[k]);
      first = 0;
    }
  printf("}");
  if (st.first_error[0]) {
    printf(",\"first_error\":\"");
    for (const char *p = st.first_error; *p; p++)
      if (*p != '"' && *p != '\\') putchar(*p);
    printf("\"");
  }
}

static int run_client(int argc, char **argv) {
  cfg.conns = 16;
  cfg.duration_s = 3;
  cfg.warmup_s = 0.5;
  cfg.timeout_s = 10;
  cfg.bytes = 256ull << 20;
  cfg.src_ips = 1;
  cfg.server_closes = 1;
  const char *proxy = NULL, *target = NULL;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) die("client: %s needs a value", a);
    i++;
    if (!strcmp(a, "--mode")) {
      cfg.mode = !strcmp(v, "rr") ? M_RR : !strcmp(v, "pingpong") ? M_PINGPONG : !strcmp(v, "bulkup") ? M_BULKUP
               : !strcmp(v, "bulkdown") ? M_BULKDN : !strcmp(v, "idle") ? M_IDLE : -1;
      if (cfg.mode < 0) die("unknown mode %s", v);
    } else if (!strcmp(a, "--proto")) {
      cfg.proto = !strcmp(v, "plain") ? P_PLAIN : !strcmp(v, "socks5") ? P_SOCKS5 : !strcmp(v, "connect") ? P_CONNECT : !strcmp(v, "socks4") ? P_SOCKS4 : -1;
      if (cfg.proto < 0) die("unknown proto %s", v);
    } else if (!strcmp(a, "--proxy")) proxy = v;
    else if (!strcmp(a, "--target")) target = v;
    else if (!strcmp(a, "--conns")) cfg.conns = atoi(v);
    else if (!strcmp(a, "--duration")) cfg.duration_s = atof(v);
    else if (!strcmp(a, "--warmup")) cfg.warmup_s = atof(v);
    else if (!strcmp(a, "--timeout")) cfg.timeout_s = atof(v);
    else if (!strcmp(a, "--bytes")) cfg.bytes = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--watch-pid")) cfg.watch_pid = atoi(v);
    else if (!strcmp(a, "--src-ips")) cfg.src_ips = atoi(v);
    else if (!strcmp(a, "--close-first")) {
      if (strcmp(v, "server") && strcmp(v, "client")) die("--close-first server|client");
      cfg.server_closes = !strcmp(v, "server");
    }
    else die("client: unknown argument %s", a);
  }
  if (!target) die("client: --target is required");
  if (cfg.proto != P_PLAIN && !proxy) die("client: --proxy is required");
  if (cfg.conns < 1 || cfg.conns > MAXCONNS) die("client: --conns out of range");
  if (cfg.duration_s <= 0 || cfg.duration_s > 600 || cfg.warmup_s < 0 || cfg.warmup_s > 60) die("client: bad duration");
  parse_hostport(target, &cfg.target);
  snprintf(cfg.target_str, sizeof cfg.target_str, "%s", target);
  if (proxy) parse_hostport(proxy, &cfg.proxy);
  cfg.has_proxy = proxy != NULL;
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  make_pattern();
  st.hist = calloc(HIST_US, sizeof *st.hist);
  conns = calloc((size_t)cfg.conns, sizeof *conns);
  epfd = epoll_create1(0);
  for (int i = 0; i < cfg.conns; i++) {
    conns[i].fd = -1;
    conns[i].idx = i;
    conns[i].rng = 0x2545F4914F6CDD1Dull ^ ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull);
  }
  struct rusage ru0, ru1;
  double wall = 0;
  struct procstat before = {0}, after = {0};
  uint64_t t0 = now_ns(), hard = t0 + (uint64_t)((cfg.warmup_s + cfg.duration_s + cfg.timeout_s + 60) * 1e9);

  if (cfg.mode == M_RR) {
    set_window(t0);
    for (int i = 0; i < cfg.conns; i++) cstart(&conns[i]);
    measure_window(&before, &ru0);
    after = proc_tree(cfg.watch_pid);
    getrusage(RUSAGE_SELF, &ru1);
    wall = cfg.duration_s;
  } else {
    /* Establish every tunnel first (at most 64 dialling at once), then measure. */
    struct procstat base = proc_tree(cfg.watch_pid);
    int opened = 0;
    uint64_t t_open0 = now_ns();
    while (opened < cfg.conns && now_ns() < hard && st.errors < MAX_ERRORS) {
      int batch = cfg.conns - opened < 64 ? cfg.conns - opened : 64;
      for (int i = 0; i < batch; i++) cstart(&conns[opened + i]);
      opened += batch;
      target_ready = opened;
      if (cfg.mode == M_IDLE) loop(t_open0 + (uint64_t)(cfg.timeout_s * 1e9), all_done_target);
      else loop(t_open0 + (uint64_t)(cfg.timeout_s * 1e9), all_ready);
    }
    double open_s = (double)(now_ns() - t_open0) / 1e9;
    if (st.errors > 0 || opened < cfg.conns) {
      print_common(0);
      printf(",\"phase\":\"open\"}\n");
      return 1;
    }
    if (cfg.mode == M_IDLE) {
      loop(now_ns() + 1000000000ull, NULL); /* settle; any byte or close now is an error */
      after = proc_tree(cfg.watch_pid);
      print_common(open_s);
      printf(",\"open_rate\":%.1f,", cfg.conns / open_s);
      print_procstat("proxy_before", base);
      printf(",");
      print_procstat("proxy", after);
      printf(",\"anon_per_tunnel_kib\":%.3f,\"pss_per_tunnel_kib\":%.3f,\"rss_per_tunnel_kib\":%.3f}\n",
             (double)(after.anon_kib - base.anon_kib) / cfg.conns, (double)(after.pss_kib - base.pss_kib) / cfg.conns,
             (double)(after.rss_kib - base.rss_kib) / cfg.conns);
      return st.errors ? 1 : 0;
    }
    before = proc_tree(cfg.watch_pid);
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t ts = now_ns();
    if (cfg.mode == M_PINGPONG) {
      set_window(ts);
      for (int i = 0; i < cfg.conns; i++)
        if (send_request(&conns[i]) != 0) cfail(&conns[i], E_RESET, "write");
      measure_window(&before, &ru0);
      wall = cfg.duration_s;
    } else {
      done_conns = 0;
      for (int i = 0; i < cfg.conns; i++) {
        if (start_bulk(&conns[i]) != 0) cfail(&conns[i], E_RESET, "write");
        else if (cfg.mode == M_BULKUP) c_writable(&conns[i]);
      }
      loop(hard, all_done);
      wall = (double)(now_ns() - ts) / 1e9;
      st.ops = done_conns;
    }
    after = proc_tree(cfg.watch_pid);
    getrusage(RUSAGE_SELF, &ru1);
  }
  double gen_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                   (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
  print_common(wall);
  if (cfg.mode == M_BULKUP || cfg.mode == M_BULKDN) {
    printf(",\"bytes\":%llu,\"mib_s\":%.1f", (unsigned long long)st.bytes, (double)st.bytes / 1048576.0 / wall);
  } else {
    printf(",\"rate\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_over_1s\":%llu", (double)st.ops / wall, hist_pct(0.5),
           hist_pct(0.99), (unsigned long long)st.hist_over);
  }
  printf(",\"gen_cpu_s\":%.3f,\"proxy_cpu_s\":%.3f,\"proxy_sys_s\":%.3f,", gen_cpu, after.cpu_s - before.cpu_s, after.sys_s - before.sys_s);
  print_procstat("proxy", after);
  printf("}\n");
  /* Close the tunnels we still hold (pingpong), so the next contestant starts clean. */
  for (int i = 0; i < cfg.conns; i++) cclose(&conns[i]);
  return st.errors ? 1 : 0;
}

/* ------------------------------------------------------------------ startup */

static void kill_tree(pid_t root) {
  int pids[4096];
  int m = tree_pids(root, pids, 4096);
  for (int i = 0; i < m; i++) kill(pids[i], SIGKILL);
}

static int run_startup(int argc, char **argv) {
  int port = 0, runs = 10;
  double timeout_s = 10;
  const char *ready = NULL;
  int i = 0;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--")) {
      i++;
      break;
    }
    if (i + 1 >= argc) die("startup: %s needs a value", argv[i]);
    if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--ready-file")) ready = argv[++i];
    else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--timeout")) timeout_s = atof(argv[++i]);
    else die("startup: unknown argument %s", argv[i]);
  }
  if (i >= argc || port <= 0 || runs < 1 || runs > 1000) die("startup: need --port and -- CMD");
  char **cmd = argv + i;
  prctl(PR_SET_CHILD_SUBREAPER, 1); /* daemons' children come back to us and are reaped */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  printf("{\"runs\":[");
  int failures = 0;
  for (int r = 0; r < runs; r++) {
    if (ready) unlink(ready);
    int pre = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(pre, (struct sockaddr *)&sa, sizeof sa) == 0) die("startup: 127.0.0.1:%d accepts before the start", port);
    close(pre);
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
      int dn = open("/dev/null", O_RDWR);
      dup2(dn, 0);
      dup2(dn, 1);
      dup2(dn, 2);
      setpgid(0, 0);
      execvp(cmd[0], cmd);
      _exit(127);
    }
    double t_accept = -1, t_ready = -1;
    uint64_t deadline = t0 + (uint64_t)(timeout_s * 1e9);
    while (now_ns() < deadline) {
      if (t_accept < 0) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) t_accept = (double)(now_ns() - t0) / 1e6;
        close(fd);
      }
      if (ready && t_ready < 0) {
        struct stat sb;
        if (stat(ready, &sb) == 0 && sb.st_size > 0) t_ready = (double)(now_ns() - t0) / 1e6;
      }
      if (t_accept >= 0 && (!ready || t_ready >= 0)) break;
      if (waitpid(pid, NULL, WNOHANG) == pid) {
        pid = -1;
        break;
      }
      struct timespec ts = {0, 100000};
      nanosleep(&ts, NULL);
    }
    if (pid > 0) kill_tree(pid);
    /* A daemon may have forked between our /proc scan and the kill (nginx's worker): such
       orphans are reparented to us (subreaper), so kill every descendant of ours until none is
       left, and wait until the port is free again, or the next start would be timed against a
       leftover listener. */
    uint64_t settle = now_ns() + 3000000000ull;
    int busy = 1;
    while (now_ns() < settle) {
      int pids[4096];
      int m = tree_pids(getpid(), pids, 4096);
      for (int k = 1; k < m; k++) kill(pids[k], SIGKILL);
      while (waitpid(-1, NULL, WNOHANG) > 0) {}
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      busy = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
      close(fd);
      if (m <= 1 && !busy) break;
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    }
    if (busy) failures++;
    if (t_accept < 0) failures++;
    printf("%s{\"accept_ms\":%.3f,\"ready_ms\":%.3f}", r ? "," : "", t_accept, t_ready);
    struct timespec gap = {0, 50000000};
    nanosleep(&gap, NULL);
  }
  printf("],\"failures\":%d}\n", failures);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: loadgen server|client|procstat|startup ...");
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  if (!strcmp(argv[1], "server")) return run_server(argc - 2, argv + 2);
  if (!strcmp(argv[1], "client")) return run_client(argc - 2, argv + 2);
  if (!strcmp(argv[1], "startup")) return run_startup(argc - 2, argv + 2);
  if (!strcmp(argv[1], "procstat") && argc == 3) {
    printf("{");
    print_procstat("proxy", proc_tree(atoi(argv[2])));
    printf("}\n");
    return 0;
  }
  die("unknown command %s", argv[1]);
}
