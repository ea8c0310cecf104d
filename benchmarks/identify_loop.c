/*
 * The C floor for issue 12's real-kernel target: IDENTIFY through
 * CXL_MEM_SEND_COMMAND in a tight loop, one prepared struct, one buffer.
 *
 *     identify_loop /dev/cxl/memN [SECONDS]
 *
 * Prints one line: "c-identify N calls S seconds R per_second".  Built on the
 * host (static, by tools/vm/kernel-tier) and run in the guest next to
 * benchmarks/kernel_identify.py.  Only the kernel's uapi is needed; the struct
 * is spelled out here so that no linux-libc-dev is required.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* include/uapi/linux/cxl_mem.h */
struct cxl_send_command {
	uint32_t id;
	uint32_t flags;
	union {
		struct {
			uint16_t opcode;
			uint16_t rsvd;
		} raw;
		uint32_t rsvd;
	};
	uint32_t retval;
	struct {
		uint32_t size;
		uint32_t rsvd;
		uint64_t payload;
	} in;
	struct {
		uint32_t size;
		uint32_t rsvd;
		uint64_t payload;
	} out;
};
#define CXL_MEM_SEND_COMMAND _IOWR(0xCE, 2, struct cxl_send_command)
#define CXL_MEM_COMMAND_ID_IDENTIFY 1

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s /dev/cxl/memN [SECONDS]\n", argv[0]);
		return 2;
	}
	double secs = argc > 2 ? atof(argv[2]) : 3.0;
	int fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	static unsigned char out[4096];
	struct cxl_send_command c;
	memset(&c, 0, sizeof(c));
	c.id = CXL_MEM_COMMAND_ID_IDENTIFY;
	c.out.size = 67;
	c.out.payload = (uintptr_t)out;
	long n = 0;
	double t0 = now(), t = t0;
	while (t - t0 < secs) {
		for (int i = 0; i < 64; i++) {
			c.out.size = 67;
			if (ioctl(fd, CXL_MEM_SEND_COMMAND, &c) < 0 || c.retval != 0) {
				fprintf(stderr, "identify: %s retval %u\n", strerror(errno), c.retval);
				return 1;
			}
			n++;
		}
		t = now();
	}
	printf("c-identify %ld calls %.3f seconds %.1f per_second\n", n, t - t0, n / (t - t0));
	close(fd);
	return 0;
}
