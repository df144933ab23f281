/*
 * oomscores: read /proc/PID/oom_score, oom_score_adj and a few /proc/PID/status
 * fields of every process in one go, print them, then (with --sleep) sleep
 * forever, so that a vmcore taken right after shows the same state.
 *
 * Output, written with one write(2) once everything has been read:
 *   OOMSCORES-BEGIN
 *   <pid> score=<oom_score> adj=<oom_score_adj> Tgid=<n> VmRSS=<kB> ... (status
 *   fields present for that pid: Tgid VmRSS RssAnon RssFile RssShmem VmSwap VmPTE)
 *   OOMSCORES-END <count>
 *
 * The reader changes nothing it measures after the measurement: the whole
 * scan runs twice and only the second is printed (the first faults in the
 * stack, the heap of opendir() and the output buffer), and nothing is
 * allocated afterwards. --delay-ms waits first, e.g. until the shell that
 * started it in the background is idle again.
 *
 * Build: gcc -static -O2 -o oomscores oomscores.c
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out[4 << 20]; /* ~100 bytes a process */
static size_t used;

static const char *const fields[] = {
	"Tgid", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSwap", "VmPTE",
};

static void emit(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out + used, sizeof(out) - used, fmt, ap);
	va_end(ap);

	if (n < 0 || (size_t)n >= sizeof(out) - used) {
		fprintf(stderr, "oomscores: output buffer full\n");
		exit(1);
	}
	used += n;
}

/* The first line of /proc/<pid>/<name> without its newline; 0 if unreadable. */
static int read_file(const char *pid, const char *name, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/%s", pid, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return 1;
}

static int one(const char *pid)
{
	static char buf[16384];
	char score[32], adj[32], *line, *next, *colon, *v;
	size_t i;

	if (!read_file(pid, "oom_score", score, sizeof(score)))
		return 0; /* gone meanwhile */
	score[strcspn(score, "\n")] = '\0';
	if (!read_file(pid, "oom_score_adj", adj, sizeof(adj)))
		strcpy(adj, "?");
	adj[strcspn(adj, "\n")] = '\0';
	emit("%s score=%s", pid, score);
	emit(" adj=%s", adj);
	if (read_file(pid, "status", buf, sizeof(buf))) {
		for (line = buf; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			colon = strchr(line, ':');
			if (!colon)
				continue;
			*colon = '\0';
			for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
				if (strcmp(line, fields[i]))
					continue;
				for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
					;
				v[strcspn(v, " \t")] = '\0';
				emit(" %s=%s", line, v);
			}
		}
	}
	emit("\n");
	return 1;
}

static int scan(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int count = 0;

	if (!d) {
		perror("/proc");
		exit(1);
	}
	used = 0;
	emit("OOMSCORES-BEGIN\n");
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		count += one(e->d_name);
	}
	closedir(d);
	emit("OOMSCORES-END %d\n", count);
	return count;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "sleep", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	long delay_ms = 0;
	int sleep_after = 0, c;
	size_t off;
	ssize_t n;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': delay_ms = atol(optarg); break;
		case 's': sleep_after = 1; break;
		default:
			fprintf(stderr, "usage: oomscores [--delay-ms MS] [--sleep]\n");
			return 2;
		}
	}
	memset(out, ' ', sizeof(out)); /* fault the whole buffer in now */
	if (delay_ms)
		usleep(delay_ms * 1000);
	scan(); /* warm-up: the same code paths, stack depth and heap as below */
	scan();
	for (off = 0; off < used; off += n) {
		n = write(1, out + off, used - off);
		if (n <= 0)
			return 1;
	}
	if (sleep_after)
		for (;;)
			pause();
	return 0;
}
