/*
 * oomslab: fill MB megabytes of unreclaimable kernel slab with System V
 * message queues, then exit. The messages stay queued in the kernel (no
 * process holds them), each one a kmalloc'ed object of a 4 KiB kmalloc cache:
 * slab the OOM killer can neither reclaim nor free by killing a task, so that
 * dump_header() finds more unreclaimable slab than LRU pages and prints
 * "Unreclaimable slab info:".
 *
 * Each queue takes the default msgmnb (16384 bytes): four 4000-byte messages;
 * no sysctl is changed.
 *
 * Build: gcc -static -O2 -o oomslab oomslab.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>

#define MSG_BYTES 4000
#define PER_QUEUE 4

struct message {
	long mtype;
	char mtext[MSG_BYTES];
};

int main(int argc, char **argv)
{
	static struct message msg = { .mtype = 1 };
	long mb = argc > 1 ? atol(argv[1]) : 0, want, sent = 0;

	if (mb <= 0) {
		fprintf(stderr, "usage: oomslab MB\n");
		return 2;
	}
	memset(msg.mtext, 0x5a, sizeof(msg.mtext));
	/* One message is one 4 KiB slab object. */
	want = mb * 256;
	while (sent < want) {
		int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600), i;

		if (q < 0) {
			perror("msgget");
			return 1;
		}
		for (i = 0; i < PER_QUEUE && sent < want; i++, sent++) {
			if (msgsnd(q, &msg, sizeof(msg.mtext), IPC_NOWAIT) < 0) {
				perror("msgsnd");
				return 1;
			}
		}
	}
	printf("slab %ld messages\n", sent);
	return 0;
}
