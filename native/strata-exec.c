/*
 * strata-exec: the first process of a build's long-lived runc container (src/runtime/session.ts).
 *
 * Starting runc costs ~55 ms here, more than everything else a RUN step does; a build therefore
 * starts one container and this program runs each RUN step in it, in fresh mount, PID, UTS and
 * IPC namespaces (and a fresh network namespace for RUN --network=none), as `runc run` would have
 * made them: the step's command is PID 1 of its own PID namespace, sees a fresh /proc, a tmpfs
 * /dev with the container's devices, /sys read-only, the masked and read-only paths, the mounts
 * it asked for, and is pivot_root'ed into the step's root filesystem, so nothing of the container
 * stays reachable. The container (runc) holds the cgroup and the device rules; its capability
 * bounding set is Docker's plus CAP_SYS_ADMIN, which this program needs to mount, and which each
 * step drops before it runs anything.
 *
 * Node cannot make these system calls itself (mount, pivot_root, unshare, capset), hence C.
 *
 * `strata-exec --host` is the other use: a long-lived helper on the host that makes the few
 * system calls a build step needs and Node lacks (mount, umount, nanosecond utimensat,
 * lgetxattr) for src/archive/host-calls.ts, instead of a mount(8) or touch(1) process each.
 *
 * Protocol (all integers little-endian u32):
 *   in  (stdin):  'R' len payload   run a step; payload = NUL-terminated fields, see parse_request
 *                 'K'               kill the running step (its whole PID namespace)
 *                 end of file       exit (the container stops)
 *   out (stdout): 'r' 0             ready for requests
 *                 'o' len bytes     the step's stdout
 *                 'e' len bytes     the step's stderr
 *                 'x' len text      the step ended: "<exit code>" (128 + n for signal n)
 *                 'f' len text      the step could not be started: why (nothing ran)
 *
 * Host mode: in 'C' len payload, payload = NUL-terminated fields, the operation first:
 *   mount SOURCE TARGET FSTYPE FLAGS DATA   (empty SOURCE/FSTYPE/DATA: NULL; FLAGS decimal MS_*)
 *   umount TARGET FLAGS
 *   utimens PATH ATIME_SEC ATIME_NSEC MTIME_SEC MTIME_NSEC   (the link itself, not its target)
 *   getxattr PATH NAME                      (the link itself)
 * out: 'k' 0 (done), 'v' len value (getxattr), 'n' 0 (no such attribute), 'e' len "errno message".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define MAX_ITEMS 4096
#define MAX_MOUNTS 256
#define MAX_GROUPS 256
#define PATH_BUFFER 4096

struct step_mount {
  const char *type; /* "bind" or "tmpfs" */
  const char *source;
  const char *destination; /* inside the step's root, no symlinks (resolved by the host) */
  const char *options;     /* comma-separated; "ro" or "rw" among them */
};

struct request {
  const char *root; /* the step's root filesystem, a path in this container */
  const char *cwd;
  const char *hostname;
  const char *dev_size; /* tmpfs size option for /dev and /dev/shm */
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_GROUPS];
  size_t group_count;
  int private_network;
  uint64_t capabilities; /* the step's bounding set (and root's effective/permitted set) */
  const char *args[MAX_ITEMS + 1];
  size_t arg_count;
  const char *env[MAX_ITEMS + 1];
  size_t env_count;
  const char *masked[MAX_ITEMS];
  size_t masked_count;
  const char *readonly[MAX_ITEMS];
  size_t readonly_count;
  struct step_mount mounts[MAX_MOUNTS];
  size_t mount_count;
};

static const char *const DEVICES[] = {"null", "zero", "full", "random", "urandom", "tty"};

/* ---- framing ---------------------------------------------------------------------------- */

static void write_all(int fd, const void *data, size_t length) {
  const char *cursor = data;
  while (length > 0) {
    ssize_t written = write(fd, cursor, length);
    if (written < 0) {
      if (errno == EINTR) continue;
      _exit(0); /* the host is gone: nothing left to serve */
    }
    cursor += written;
    length -= (size_t)written;
  }
}

static void send_frame(char type, const void *data, uint32_t length) {
  unsigned char header[5] = {(unsigned char)type, length & 0xff, (length >> 8) & 0xff,
                             (length >> 16) & 0xff, (length >> 24) & 0xff};
  write_all(STDOUT_FILENO, header, sizeof header);
  if (length > 0) write_all(STDOUT_FILENO, data, length);
}

static void send_text(char type, const char *text) { send_frame(type, text, (uint32_t)strlen(text)); }

/* Reads exactly `length` bytes; 0 at a clean end of file before the first byte, -1 otherwise. */
static int read_exact(int fd, void *buffer, size_t length) {
  char *cursor = buffer;
  size_t done = 0;
  while (done < length) {
    ssize_t got = read(fd, cursor + done, length - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return done == 0 && got == 0 ? 0 : -1;
    done += (size_t)got;
  }
  return 1;
}

/* The payload length of a frame header: the u32 after the type byte, little-endian. */
static uint32_t frame_length(const unsigned char header[5]) {
  return header[1] | header[2] << 8 | header[3] << 16 | (uint32_t)header[4] << 24;
}

/* ---- the request ---------------------------------------------------------------------- */

static int parse_number(const char *text, unsigned long long *out) {
  char *end;
  errno = 0;
  *out = strtoull(text, &end, 10);
  return errno == 0 && *text != '\0' && *end == '\0' ? 0 : -1;
}

/*
 * Fields: a key, then that key's values: root P, cwd P, hostname H, devsize S, uid N, gid N,
 * group N (repeated), network none|host, capabilities N (a 64-bit mask), arg A, env E,
 * masked P, readonly P (all repeated), mount TYPE SOURCE DESTINATION OPTIONS (repeated).
 */
static int parse_request(char *payload, size_t length, struct request *request, const char **error) {
  const char *items[MAX_ITEMS * 4];
  size_t count = 0;
  if (length == 0 || payload[length - 1] != '\0') {
    *error = "request is not NUL-terminated";
    return -1;
  }
  for (size_t start = 0; start < length;) {
    if (count == sizeof items / sizeof items[0]) {
      *error = "request has too many fields";
      return -1;
    }
    items[count++] = payload + start;
    start += strlen(payload + start) + 1;
  }
  memset(request, 0, sizeof *request);
  for (size_t index = 0; index < count;) {
    const char *key = items[index++];
    size_t values = strcmp(key, "mount") == 0 ? 4 : 1;
    if (index + values > count) {
      *error = "request field without a value";
      return -1;
    }
    const char *value = items[index];
    unsigned long long number = 0;
    if (strcmp(key, "root") == 0) request->root = value;
    else if (strcmp(key, "cwd") == 0) request->cwd = value;
    else if (strcmp(key, "hostname") == 0) request->hostname = value;
    else if (strcmp(key, "devsize") == 0) request->dev_size = value;
    else if (strcmp(key, "network") == 0) request->private_network = strcmp(value, "none") == 0;
    else if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0 || strcmp(key, "group") == 0 ||
             strcmp(key, "capabilities") == 0) {
      if (parse_number(value, &number) != 0) {
        *error = "request has a malformed number";
        return -1;
      }
      if (strcmp(key, "uid") == 0) request->uid = (uid_t)number;
      else if (strcmp(key, "gid") == 0) request->gid = (gid_t)number;
      else if (strcmp(key, "capabilities") == 0) request->capabilities = number;
      else if (request->group_count < MAX_GROUPS) request->groups[request->group_count++] = (gid_t)number;
      else {
        *error = "too many supplementary groups";
        return -1;
      }
    } else if (strcmp(key, "arg") == 0 && request->arg_count < MAX_ITEMS)
      request->args[request->arg_count++] = value;
    else if (strcmp(key, "env") == 0 && request->env_count < MAX_ITEMS)
      request->env[request->env_count++] = value;
    else if (strcmp(key, "masked") == 0 && request->masked_count < MAX_ITEMS)
      request->masked[request->masked_count++] = value;
    else if (strcmp(key, "readonly") == 0 && request->readonly_count < MAX_ITEMS)
      request->readonly[request->readonly_count++] = value;
    else if (strcmp(key, "mount") == 0 && request->mount_count < MAX_MOUNTS) {
      struct step_mount *mount = &request->mounts[request->mount_count++];
      mount->type = items[index];
      mount->source = items[index + 1];
      mount->destination = items[index + 2];
      mount->options = items[index + 3];
    } else {
      *error = "request has an unknown field or too many of one";
      return -1;
    }
    index += values;
  }
  if (request->root == NULL || request->cwd == NULL || request->arg_count == 0 || request->dev_size == NULL) {
    *error = "request lacks root, cwd, devsize or args";
    return -1;
  }
  request->args[request->arg_count] = NULL;
  request->env[request->env_count] = NULL;
  return 0;
}

/* ---- inside the step's namespaces (the child) -------------------------------------------- */

static int error_fd = -1;

/* Reports why the step could not start, on the close-on-exec error pipe, and exits. */
static void fail(const char *format, ...) {
  char message[PATH_BUFFER + 256];
  va_list arguments;
  va_start(arguments, format);
  int length = vsnprintf(message, sizeof message, format, arguments);
  va_end(arguments);
  if (length > 0) {
    size_t size = (size_t)length < sizeof message ? (size_t)length : sizeof message - 1;
    if (write(error_fd, message, size) < 0) {
      /* Nobody to tell: the exit status below still says it failed. */
    }
  }
  _exit(127);
}

static const char *at(const struct request *request, const char *path, char *buffer) {
  int length = snprintf(buffer, PATH_BUFFER, "%s%s", request->root, path);
  if (length < 0 || length >= PATH_BUFFER) fail("path too long: %s", path);
  return buffer;
}

static void must_mount(const char *source, const char *target, const char *type, unsigned long flags,
                       const char *data) {
  if (mount(source, target, type, flags, data) != 0)
    fail("cannot mount %s on %s: %s", type != NULL ? type : source, target, strerror(errno));
}

/*
 * A bind mount made read-only takes a second call (the kernel ignores MS_RDONLY on the first),
 * which must repeat the mount's nosuid/nodev/noexec or it would clear them.
 */
static void bind_mount(const char *source, const char *target, int readonly) {
  must_mount(source, target, NULL, MS_BIND | MS_REC, NULL);
  if (!readonly) return;
  struct statvfs current;
  if (statvfs(target, &current) != 0) fail("cannot stat %s: %s", target, strerror(errno));
  unsigned long kept = (current.f_flag & ST_NOSUID ? MS_NOSUID : 0) | (current.f_flag & ST_NODEV ? MS_NODEV : 0) |
                       (current.f_flag & ST_NOEXEC ? MS_NOEXEC : 0);
  must_mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | kept, NULL);
}

static int has_option(const char *options, const char *wanted) {
  size_t length = strlen(wanted);
  for (const char *cursor = options; *cursor != '\0';) {
    const char *end = strchr(cursor, ',');
    size_t size = end == NULL ? strlen(cursor) : (size_t)(end - cursor);
    if (size == length && strncmp(cursor, wanted, length) == 0) return 1;
    if (end == NULL) break;
    cursor = end + 1;
  }
  return 0;
}

/* The tmpfs options that are data (size=, mode=…), without the flags handled as mount flags. */
static void tmpfs_data(const char *options, char *data, size_t capacity) {
  data[0] = '\0';
  for (const char *cursor = options; *cursor != '\0';) {
    const char *end = strchr(cursor, ',');
    size_t size = end == NULL ? strlen(cursor) : (size_t)(end - cursor);
    int flag = (size == 2 && strncmp(cursor, "ro", 2) == 0) || (size == 2 && strncmp(cursor, "rw", 2) == 0) ||
               (size == 6 && strncmp(cursor, "nosuid", 6) == 0) || (size == 5 && strncmp(cursor, "nodev", 5) == 0) ||
               (size == 6 && strncmp(cursor, "noexec", 6) == 0);
    if (!flag && size > 0) {
      size_t used = strlen(data);
      if (used + size + 2 > capacity) fail("tmpfs options too long: %s", options);
      if (used > 0) data[used++] = ',';
      memcpy(data + used, cursor, size);
      data[used + size] = '\0';
    }
    if (end == NULL) break;
    cursor = end + 1;
  }
}

static void make_devices(const struct request *request) {
  char target[PATH_BUFFER], data[256], source[64];
  snprintf(data, sizeof data, "mode=755,%s", request->dev_size);
  must_mount("tmpfs", at(request, "/dev", target), "tmpfs", MS_NOSUID | MS_STRICTATIME, data);
  for (size_t index = 0; index < sizeof DEVICES / sizeof DEVICES[0]; index++) {
    char relative[64];
    snprintf(relative, sizeof relative, "/dev/%s", DEVICES[index]);
    snprintf(source, sizeof source, "/dev/%s", DEVICES[index]);
    /* Made, as runc makes them, from the container's own nodes (which runc made). */
    struct stat device;
    if (stat(source, &device) != 0) fail("cannot stat %s: %s", source, strerror(errno));
    if (mknod(at(request, relative, target), S_IFCHR | 0666, device.st_rdev) != 0)
      fail("cannot create %s: %s", target, strerror(errno));
    if (chmod(target, 0666) != 0) fail("cannot chmod %s: %s", target, strerror(errno));
  }
  const char *directories[] = {"/dev/pts", "/dev/shm", "/dev/mqueue"};
  for (size_t index = 0; index < 3; index++) {
    if (mkdir(at(request, directories[index], target), 0755) != 0)
      fail("cannot create %s: %s", target, strerror(errno));
  }
  must_mount("devpts", at(request, "/dev/pts", target), "devpts", MS_NOSUID | MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5");
  snprintf(data, sizeof data, "mode=1777,%s", request->dev_size);
  must_mount("shm", at(request, "/dev/shm", target), "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, data);
  must_mount("mqueue", at(request, "/dev/mqueue", target), "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL);
  const char *links[][2] = {{"pts/ptmx", "/dev/ptmx"},
                            {"/proc/self/fd", "/dev/fd"},
                            {"/proc/self/fd/0", "/dev/stdin"},
                            {"/proc/self/fd/1", "/dev/stdout"},
                            {"/proc/self/fd/2", "/dev/stderr"}};
  for (size_t index = 0; index < 5; index++) {
    if (symlink(links[index][0], at(request, links[index][1], target)) != 0)
      fail("cannot create %s: %s", target, strerror(errno));
  }
}

/* In runc's order: the read-only paths, then the masked ones. */
static void protect_paths(const struct request *request) {
  char target[PATH_BUFFER];
  for (size_t index = 0; index < request->readonly_count; index++) {
    at(request, request->readonly[index], target);
    if (access(target, F_OK) != 0) continue;
    bind_mount(target, target, 1);
  }
  for (size_t index = 0; index < request->masked_count; index++) {
    struct stat status;
    at(request, request->masked[index], target);
    if (stat(target, &status) != 0) continue;
    if (S_ISDIR(status.st_mode))
      must_mount("tmpfs", target, "tmpfs", MS_RDONLY, NULL);
    else
      must_mount("/dev/null", target, NULL, MS_BIND, NULL);
  }
}

static void step_mounts(const struct request *request) {
  char target[PATH_BUFFER], data[1024];
  for (size_t index = 0; index < request->mount_count; index++) {
    const struct step_mount *mount = &request->mounts[index];
    int readonly = has_option(mount->options, "ro");
    at(request, mount->destination, target);
    if (strcmp(mount->type, "tmpfs") == 0) {
      tmpfs_data(mount->options, data, sizeof data);
      must_mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | (readonly ? MS_RDONLY : 0), data);
    } else {
      bind_mount(mount->source, target, readonly);
    }
  }
}

static void loopback_up(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("cannot open a socket to bring lo up: %s", strerror(errno));
  struct ifreq interface;
  memset(&interface, 0, sizeof interface);
  strcpy(interface.ifr_name, "lo");
  if (ioctl(fd, SIOCGIFFLAGS, &interface) != 0) fail("cannot read lo's flags: %s", strerror(errno));
  interface.ifr_flags |= IFF_UP;
  if (ioctl(fd, SIOCSIFFLAGS, &interface) != 0) fail("cannot bring lo up: %s", strerror(errno));
  close(fd);
}

/* Leaves only the step's capabilities: bounding set for everyone, effective/permitted for root. */
static void drop_capabilities(const struct request *request) {
  int last = CAP_LAST_CAP;
  FILE *file = fopen("/proc/sys/kernel/cap_last_cap", "re");
  if (file != NULL) {
    if (fscanf(file, "%d", &last) != 1) last = CAP_LAST_CAP;
    fclose(file);
  }
  for (int cap = 0; cap <= last; cap++) {
    if (request->capabilities & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      fail("cannot drop capability %d: %s", cap, strerror(errno));
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

static void set_root_capabilities(const struct request *request) {
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  for (int word = 0; word < 2; word++) {
    uint32_t bits = (uint32_t)(request->capabilities >> (32 * word));
    data[word].effective = bits;
    data[word].permitted = bits;
  }
  if (syscall(SYS_capset, &header, data) != 0) fail("cannot set capabilities: %s", strerror(errno));
}

static const char *lookup_env(const struct request *request, const char *name) {
  size_t length = strlen(name);
  const char *found = NULL;
  for (size_t index = 0; index < request->env_count; index++) {
    if (strncmp(request->env[index], name, length) == 0 && request->env[index][length] == '=')
      found = request->env[index] + length + 1;
  }
  return found;
}

/* execve with the PATH of the step's own environment, as runc looks the command up. */
static void exec_command(const struct request *request) {
  const char *command = request->args[0];
  char *const *argv = (char *const *)request->args;
  char *const *envp = (char *const *)request->env;
  if (strchr(command, '/') != NULL) {
    execve(command, argv, envp);
    fail("exec: \"%s\": %s", command, strerror(errno));
  }
  const char *path = lookup_env(request, "PATH");
  if (path == NULL) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  int denied = 0;
  for (const char *cursor = path;;) {
    const char *end = strchr(cursor, ':');
    size_t size = end == NULL ? strlen(cursor) : (size_t)(end - cursor);
    char candidate[PATH_BUFFER];
    if (size > 0 && size + strlen(command) + 2 < sizeof candidate) {
      memcpy(candidate, cursor, size);
      candidate[size] = '/';
      strcpy(candidate + size + 1, command);
      execve(candidate, argv, envp);
      if (errno == EACCES) denied = 1;
      else if (errno != ENOENT && errno != ENOTDIR) fail("exec: \"%s\": %s", candidate, strerror(errno));
    }
    if (end == NULL) break;
    cursor = end + 1;
  }
  if (denied) fail("exec: \"%s\": permission denied", command);
  fail("exec: \"%s\": executable file not found in $PATH", command);
}

static void run_child(const struct request *request, int out_fd, int err_fd) {
  char target[PATH_BUFFER];
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int signal_number = 1; signal_number < NSIG; signal_number++) signal(signal_number, SIG_DFL);

  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
      dup2(err_fd, STDERR_FILENO) < 0)
    fail("cannot set up the step's standard streams: %s", strerror(errno));

  /* Nothing mounted from here on may reach the container's mount namespace. */
  must_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  /* pivot_root needs the new root to be a mount point (a FROM scratch root is a plain dir). */
  bind_mount(request->root, request->root, 0);
  must_mount("proc", at(request, "/proc", target), "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL);
  make_devices(request);
  must_mount("sysfs", at(request, "/sys", target), "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, NULL);
  step_mounts(request);
  protect_paths(request);
  if (request->hostname != NULL && sethostname(request->hostname, strlen(request->hostname)) != 0)
    fail("cannot set the hostname: %s", strerror(errno));
  if (request->private_network) loopback_up();

  if (chdir(request->root) != 0) fail("cannot enter %s: %s", request->root, strerror(errno));
  if (syscall(SYS_pivot_root, ".", ".") != 0) fail("pivot_root: %s", strerror(errno));
  if (umount2(".", MNT_DETACH) != 0) fail("cannot detach the container's root: %s", strerror(errno));
  if (chdir("/") != 0) fail("chdir /: %s", strerror(errno));
  int cwd_failed = chdir(request->cwd) != 0 ? errno : 0;

  drop_capabilities(request);
  if (setgroups(request->group_count, request->groups) != 0) fail("setgroups: %s", strerror(errno));
  if (setresgid(request->gid, request->gid, request->gid) != 0) fail("setgid: %s", strerror(errno));
  if (setresuid(request->uid, request->uid, request->uid) != 0) fail("setuid: %s", strerror(errno));
  if (request->uid == 0) set_root_capabilities(request);
  /* A working directory only the user may enter (0700, owned by them) is entered as the user. */
  if (cwd_failed != 0 && chdir(request->cwd) != 0)
    fail("cannot enter the working directory %s: %s", request->cwd, strerror(errno));
  exec_command(request);
}

/* ---- the executor (PID 1 of the container) ----------------------------------------------- */

static void forward(int fd, char type, int *open_flag) {
  char buffer[65536];
  ssize_t got = read(fd, buffer, sizeof buffer);
  if (got > 0) send_frame(type, buffer, (uint32_t)got);
  else if (got == 0 || (errno != EINTR && errno != EAGAIN)) *open_flag = 0;
}

/* Reads the next host message while a step runs: 'K' kills it; end of file kills it and exits. */
static int host_message(pid_t child) {
  char type;
  ssize_t got = read(STDIN_FILENO, &type, 1);
  if (got < 0 && errno == EINTR) return 0;
  if (got <= 0) {
    kill(child, SIGKILL);
    return -1;
  }
  if (type == 'K') kill(child, SIGKILL);
  return 0;
}

static void run_step(struct request *request, int child_signals) {
  int out[2], err[2], errors[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(errors, O_CLOEXEC) != 0) {
    send_text('f', "cannot create pipes");
    return;
  }
  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (request->private_network) flags |= CLONE_NEWNET;
  /* A raw clone behaves like fork here (no new stack): the child is PID 1 of a new namespace. */
  pid_t child = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
  if (child == 0) {
    close(out[0]);
    close(err[0]);
    close(errors[0]);
    error_fd = errors[1];
    run_child(request, out[1], err[1]);
  }
  close(out[1]);
  close(err[1]);
  close(errors[1]);
  if (child < 0) {
    char message[256];
    snprintf(message, sizeof message, "cannot create the step's namespaces: %s", strerror(errno));
    send_text('f', message);
    close(out[0]);
    close(err[0]);
    close(errors[0]);
    return;
  }
  int out_open = 1, err_open = 1, host_gone = 0, reaped = 0, status = 0;
  while (out_open || err_open || !reaped) {
    struct pollfd fds[4] = {{.fd = out_open ? out[0] : -1, .events = POLLIN},
                            {.fd = err_open ? err[0] : -1, .events = POLLIN},
                            {.fd = child_signals, .events = POLLIN},
                            {.fd = host_gone ? -1 : STDIN_FILENO, .events = POLLIN}};
    if (poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) forward(out[0], 'o', &out_open);
    if (fds[1].revents) forward(err[0], 'e', &err_open);
    if (fds[2].revents) {
      struct signalfd_siginfo info;
      while (read(child_signals, &info, sizeof info) > 0) {
      }
      int child_status;
      pid_t done;
      while ((done = waitpid(-1, &child_status, WNOHANG)) > 0) {
        if (done == child) {
          reaped = 1;
          status = child_status;
        }
      }
    }
    if (fds[3].revents && host_message(child) != 0) host_gone = 1;
  }
  char message[PATH_BUFFER + 256];
  ssize_t length = read(errors[0], message, sizeof message - 1);
  close(out[0]);
  close(err[0]);
  close(errors[0]);
  if (host_gone) _exit(0);
  if (length > 0) {
    message[length] = '\0';
    send_text('f', message);
    return;
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
  char text[16];
  snprintf(text, sizeof text, "%d", code);
  send_text('x', text);
}

/* ---- host mode ------------------------------------------------------------------------- */

static const char *nullable(const char *text) { return *text == '\0' ? NULL : text; }

static void host_reply_errno(void) {
  char message[256];
  int code = errno;
  snprintf(message, sizeof message, "%d %s", code, strerror(code));
  send_text('e', message);
}

static void host_call(char **fields, size_t count) {
  unsigned long long numbers[4];
  const char *op = fields[0];
  if (strcmp(op, "mount") == 0 && count == 6 && parse_number(fields[4], &numbers[0]) == 0) {
    if (mount(nullable(fields[1]), fields[2], nullable(fields[3]), (unsigned long)numbers[0], nullable(fields[5])) != 0)
      host_reply_errno();
    else
      send_frame('k', NULL, 0);
  } else if (strcmp(op, "umount") == 0 && count == 3 && parse_number(fields[2], &numbers[0]) == 0) {
    if (umount2(fields[1], (int)numbers[0]) != 0) host_reply_errno();
    else send_frame('k', NULL, 0);
  } else if (strcmp(op, "utimens") == 0 && count == 6 && parse_number(fields[2], &numbers[0]) == 0 &&
             parse_number(fields[3], &numbers[1]) == 0 && parse_number(fields[4], &numbers[2]) == 0 &&
             parse_number(fields[5], &numbers[3]) == 0) {
    struct timespec times[2] = {{.tv_sec = (time_t)numbers[0], .tv_nsec = (long)numbers[1]},
                                {.tv_sec = (time_t)numbers[2], .tv_nsec = (long)numbers[3]}};
    if (utimensat(AT_FDCWD, fields[1], times, AT_SYMLINK_NOFOLLOW) != 0) host_reply_errno();
    else send_frame('k', NULL, 0);
  } else if (strcmp(op, "getxattr") == 0 && count == 3) {
    char value[65536];
    ssize_t length = lgetxattr(fields[1], fields[2], value, sizeof value);
    if (length >= 0) send_frame('v', value, (uint32_t)length);
    else if (errno == ENODATA || errno == ENOTSUP) send_frame('n', NULL, 0);
    else host_reply_errno();
  } else {
    errno = EINVAL;
    host_reply_errno();
  }
}

static int host_mode(void) {
  for (;;) {
    unsigned char header[5];
    int got = read_exact(STDIN_FILENO, header, sizeof header);
    if (got == 0) return 0;
    if (got < 0 || header[0] != 'C') return 1;
    uint32_t length = frame_length(header);
    if (length == 0 || length > 1u << 20) return 1;
    char *payload = malloc(length);
    if (payload == NULL || read_exact(STDIN_FILENO, payload, length) != 1) return 1;
    char *fields[8];
    size_t count = 0;
    for (size_t start = 0; start < length && count < 8;) {
      fields[count++] = payload + start;
      size_t size = strnlen(payload + start, length - start);
      start += size + 1;
    }
    if (payload[length - 1] != '\0' || count == 0) {
      errno = EINVAL;
      host_reply_errno();
    } else {
      host_call(fields, count);
    }
    free(payload);
  }
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && strcmp(argv[1], "--host") == 0) return host_mode();
  sigset_t child_set;
  sigemptyset(&child_set);
  sigaddset(&child_set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &child_set, NULL);
  int child_signals = signalfd(-1, &child_set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (child_signals < 0) {
    perror("signalfd");
    return 1;
  }
  send_frame('r', NULL, 0);
  for (;;) {
    unsigned char header[5];
    int got = read_exact(STDIN_FILENO, header, 1);
    if (got == 0) return 0;
    if (got < 0) return 1;
    if (header[0] == 'K') continue; /* a kill that arrived after its step ended */
    if (header[0] != 'R' || read_exact(STDIN_FILENO, header + 1, 4) != 1) return 1;
    uint32_t length = frame_length(header);
    if (length > 64u << 20) return 1;
    char *payload = malloc(length + 1);
    if (payload == NULL || read_exact(STDIN_FILENO, payload, length) != 1) return 1;
    static struct request request;
    const char *error = NULL;
    if (parse_request(payload, length, &request, &error) != 0) send_text('f', error);
    else run_step(&request, child_signals);
    free(payload);
  }
}
