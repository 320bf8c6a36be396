/* The bare-KVM floor for `volt bench boot`: the least a KVM monitor process can
 * do. Open /dev/kvm, create a VM with 64 KiB of memory and one vCPU, run one
 * HLT in real mode, exit. Any monitor on this host pays at least this. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

int main(void) {
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) return 2;
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) return 3;
    uint8_t *mem = mmap(0, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) return 4;
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = 0x10000, .userspace_addr = (uint64_t)mem};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) return 5;
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) return 6;
    int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) return 7;
    mem[0x100] = 0xf4; /* hlt */
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) return 8;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) return 9;
    struct kvm_regs regs = {.rip = 0x100, .rflags = 2};
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) return 10;
    if (ioctl(vcpu, KVM_RUN, 0) < 0) return 11;
    return run->exit_reason == KVM_EXIT_HLT ? 0 : 12;
}
