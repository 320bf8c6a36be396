//! Entry code. The only instructions that ever run at CPL 0 are the three of
//! `ov_syscall_entry` and the seven of `ov_page_fault_entry`; everything
//! else here runs at CPL 3.
//!
//! Flow of a system call from the application:
//! 1. `syscall` → CPU switches to CPL 0 (CS=0x08), RCX = return RIP, R11 = RFLAGS,
//!    IF cleared by SFMASK; RSP is still the user stack.
//! 2. `ov_syscall_entry` (CPL 0) skips the red zone and builds an `iretq` frame
//!    on that stack that enters `ov_syscall_handler` at CPL 3 with IF=0. No
//!    register is touched (PVM emulates CPL 0 instruction by instruction, and
//!    `sysret` is not emulated at all).
//! 3. `ov_syscall_handler` (CPL 3) switches to the library-OS stack, saves all
//!    registers and the FPU/SSE state, calls the system-call dispatcher (`ov_syscall_dispatch`),
//!    restores, and returns to the application with `iretq` (CPL 3 → CPL 3),
//!    leaving RCX and R11 as Linux does.
//!
//! Exceptions arrive through DPL-3 IDT gates on IST1 (IST2 for #DF/NMI/#MC),
//! except the page fault: its faulting address is in CR2, which only CPL 0
//! can read, so its gate enters `ov_page_fault_entry` at CPL 0 (on IST1),
//! which stores CR2 in `ov_fault_cr2` and `iretq`s to `ov_exc_14` at CPL 3
//! with RSP at the hardware frame — what a DPL-3 gate would have done. That
//! costs a few emulated instructions instead of an exit to the monitor.
use core::arch::global_asm;

use optivolt_abi::header::{HEADER_SIZE, LIBOS_MAGIC};
use optivolt_abi::hypercall::Registers;
use optivolt_abi::layout::{USER_CS, USER_SS};
use optivolt_abi::ABI_VERSION;

/// Saved state of a system call, as `ov_syscall_handler` pushes it.
#[repr(C)]
#[derive(Debug)]
pub struct SyscallFrame {
    /// General-purpose registers; `rax` carries the number in and the result out.
    pub regs: Registers,
    /// Return address (the instruction after `syscall`).
    pub rip: u64,
    /// User code selector.
    pub cs: u64,
    /// User flags.
    pub rflags: u64,
    /// User stack pointer.
    pub rsp: u64,
    /// User stack selector.
    pub ss: u64,
}

/// Saved state of an exception.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    /// General-purpose registers at the fault.
    pub regs: Registers,
    /// Exception vector.
    pub vector: u64,
    /// CPU error code (0 if the vector has none).
    pub error_code: u64,
    /// Faulting instruction (for faults) or the next one (for traps).
    pub rip: u64,
    /// Code selector.
    pub cs: u64,
    /// Flags.
    pub rflags: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Stack selector.
    pub ss: u64,
}

/// Size of the boot stack, reused as the system-call stack once the application runs.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

extern "C" {
    /// Switches to the application: RSP = `rsp`, all registers cleared, IF set,
    /// jump to `entry` (an `iretq` from CPL 3 to CPL 3).
    pub fn ov_enter_user(entry: u64, rsp: u64) -> !;
    /// Saves callee-saved registers and RSP into `*prev_ksp`, continues on
    /// `next_ksp` (a stack saved by this function or built by [`thread_stack`]).
    pub fn ov_switch_to(prev_ksp: *mut u64, next_ksp: u64);
    /// Kernel-stack top used by the next system call or timer interrupt.
    pub static mut ov_syscall_stack_top: u64;
    /// 1 while the call in progress came through a patched site.
    pub static mut ov_entry_jumped: u8;
    /// Where a patched site's trampoline enters the library OS.
    pub fn ov_syscall_jump_entry();
    fn ov_thread_start();
}

/// Prepares a new thread's kernel stack (`top` is its 16-byte-aligned top):
/// the child's user state as a [`SyscallFrame`], below it what
/// [`ov_switch_to`] pops, returning into the thread-start trampoline.
/// Returns the initial saved stack pointer.
///
/// # Safety
/// `top` must be the top of a writable, unused stack of at least 4 KiB.
pub unsafe fn thread_stack(top: u64, frame: &SyscallFrame) -> u64 {
    let fsize = core::mem::size_of::<SyscallFrame>() as u64;
    let frame_at = top - fsize;
    // SAFETY: the caller guarantees the memory below `top` is ours.
    unsafe {
        core::ptr::copy_nonoverlapping(
            frame as *const SyscallFrame,
            frame_at as *mut SyscallFrame,
            1,
        );
        // switch_to pops r15, r14, r13, r12, rbx, rbp, then returns.
        let words = [
            0u64,
            0,
            0,
            0,
            0,
            0,
            ov_thread_start as *const () as usize as u64,
        ];
        let sp = frame_at - (words.len() as u64) * 8;
        core::ptr::copy_nonoverlapping(words.as_ptr(), sp as *mut u64, words.len());
        sp
    }
}

impl Clone for SyscallFrame {
    fn clone(&self) -> Self {
        SyscallFrame {
            regs: self.regs,
            rip: self.rip,
            cs: self.cs,
            rflags: self.rflags,
            rsp: self.rsp,
            ss: self.ss,
        }
    }
}

global_asm!(
    // Save/restore all general-purpose registers in the `Registers` order.
    ".macro OV_PUSH_GPRS",
    "    push rax",
    "    push rbx",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push rbp",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    ".endm",
    ".macro OV_POP_GPRS",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop r11",
    "    pop r10",
    "    pop r9",
    "    pop r8",
    "    pop rbp",
    "    pop rdi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rbx",
    "    pop rax",
    ".endm",
    // ---------------------------------------------------------------- header
    ".section .optivolt.header, \"a\"",
    ".balign 8",
    ".quad {magic}",
    ".long {version}",
    ".long {hsize}",
    ".quad _start",
    ".quad ov_boot_stack_top",
    ".quad ov_syscall_entry",
    ".quad ov_exception_table",
    ".quad ov_interrupt_entry",
    ".quad ov_timer_entry",
    ".quad ov_page_fault_entry",
    // ---------------------------------------------------------------- stacks
    ".section .bss.ov_stacks, \"aw\", @nobits",
    ".balign 64",
    ".global ov_boot_stack",
    "ov_boot_stack:",
    ".skip {stack}",
    ".global ov_boot_stack_top",
    "ov_boot_stack_top:",
    ".section .data.ov_syscall, \"aw\"",
    ".balign 8",
    "ov_user_rsp_scratch: .quad 0",
    // The CPL-0 stub's iretq frame, prebuilt: only RSP changes per call.
    ".balign 16",
    "ov_stub_frame:",
    ".quad ov_syscall_handler",
    ".quad {user_cs}",
    ".quad 0x202",
    "ov_stub_frame_rsp: .quad 0",
    ".quad {user_ss}",
    "ov_irq_scratch: .quad 0",
    // The page-fault stub's iretq frame, prebuilt like ov_stub_frame.
    ".balign 16",
    "ov_pf_frame:",
    ".quad ov_exc_14",
    ".quad {user_cs}",
    ".quad 0x202",
    "ov_pf_frame_rsp: .quad 0",
    ".quad {user_ss}",
    "ov_pf_rax: .quad 0",
    // CR2 of the last page fault, for ov_exception_dispatch.
    ".global ov_fault_cr2",
    "ov_fault_cr2: .quad 0",
    // Where the system-call return jumps (see the end of ov_syscall_handler).
    "ov_return_rip: .quad 0",
    // Set by the jump entry, read and cleared by the dispatcher: whether the
    // call in progress came through a patched site.
    ".global ov_entry_jumped",
    "ov_entry_jumped: .byte 0",
    ".global ov_syscall_stack_top",
    "ov_syscall_stack_top: .quad ov_boot_stack_top",
    "ov_mxcsr_default: .long 0x1f80",
    // ---------------------------------------------------------------- _start
    ".section .text.ov_entry, \"ax\"",
    ".global _start",
    "_start:",
    "    and rsp, -16",
    "    xor ebp, ebp",
    "    call ov_libos_main",
    "    ud2",
    // ------------------------------------------------- CPL 0: syscall entry
    ".balign 16",
    ".global ov_syscall_entry",
    "ov_syscall_entry:",
    "    mov [rip + ov_stub_frame_rsp], rsp",
    "    lea rsp, [rip + ov_stub_frame]",
    "    iretq",
    // ------------------------------------------- CPL 0: page-fault entry
    // RSP is IST1 with the hardware frame (error code first). No tick can
    // land here (interrupt gate), and the library OS takes no page fault of
    // its own before ov_exception_dispatch has read ov_fault_cr2.
    ".balign 16",
    ".global ov_page_fault_entry",
    "ov_page_fault_entry:",
    "    mov [rip + ov_pf_rax], rax",
    "    mov rax, cr2",
    "    mov [rip + ov_fault_cr2], rax",
    "    mov [rip + ov_pf_frame_rsp], rsp",
    "    mov rax, [rip + ov_pf_rax]",
    "    lea rsp, [rip + ov_pf_frame]",
    "    iretq",
    // ------------------------ CPL 3: entry from a patched site's trampoline
    // RCX, R11 and RAX hold what `syscall` would have left (see arch::patch);
    // RIP is the library OS's, so no tick is taken from here on.
    ".balign 16",
    ".global ov_syscall_jump_entry",
    "ov_syscall_jump_entry:",
    "    mov byte ptr [rip + ov_entry_jumped], 1",
    "    jmp ov_syscall_handler",
    // --------------------------------------------- CPL 3: syscall handler
    ".balign 16",
    "ov_syscall_handler:",
    "    mov [rip + ov_user_rsp_scratch], rsp",
    "    mov rsp, [rip + ov_syscall_stack_top]",
    "    push {user_ss}",
    "    push qword ptr [rip + ov_user_rsp_scratch]",
    "    push r11",
    "    push {user_cs}",
    "    push rcx",
    "    OV_PUSH_GPRS",
    "    mov rbx, rsp",
    "    sub rsp, 512",
    "    fxsave64 [rsp]",
    "    ldmxcsr [rip + ov_mxcsr_default]",
    "    cld",
    "    mov rdi, rbx",
    "    call ov_syscall_dispatch",
    "    fxrstor64 [rsp]",
    "    mov rsp, rbx",
    // Return without iretq, which PVM emulates (a trap's worth of time):
    // the frame's RIP goes to a scratch slot, then RFLAGS from the frame,
    // the user stack, and an indirect jump. This serves plain returns,
    // signal frames and sigreturn alike: CS and SS are always the user
    // ones, and popfq at CPL 3 changes what iretq would (not IF or IOPL).
    // Nothing can run in between and reuse the slot: ticks that land in
    // the library OS are dropped, and it takes no exception here. Only a
    // context with TF set (single-stepping) takes the iretq, so that the
    // trap comes after the first instruction of the application.
    "    mov rax, [rsp + {frame_rip}]",
    "    mov [rip + ov_return_rip], rax",
    "    test qword ptr [rsp + {frame_rflags}], 0x100",
    "    OV_POP_GPRS",
    "    jnz 3f",
    "    push qword ptr [rsp + 16]",
    "    popfq",
    "    mov rsp, [rsp + 24]",
    "    jmp qword ptr [rip + ov_return_rip]",
    "3:",
    "    iretq",
    // -------------------------------------------------- exception stubs
    ".macro OV_EXC_NOERR v",
    "ov_exc_\\v:",
    "    push 0",
    "    push \\v",
    "    jmp ov_exception_common",
    ".endm",
    ".macro OV_EXC_ERR v",
    "ov_exc_\\v:",
    "    push \\v",
    "    jmp ov_exception_common",
    ".endm",
    ".irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31",
    "OV_EXC_NOERR \\v",
    ".endr",
    ".irp v, 8,10,11,12,13,14,17,21,29,30",
    "OV_EXC_ERR \\v",
    ".endr",
    "ov_exception_common:",
    "    OV_PUSH_GPRS",
    "    mov rbx, rsp",
    "    and rsp, -16",
    "    sub rsp, 512",
    "    fxsave64 [rsp]",
    "    ldmxcsr [rip + ov_mxcsr_default]",
    "    cld",
    "    mov rdi, rbx",
    "    call ov_exception_dispatch",
    "    fxrstor64 [rsp]",
    "    mov rsp, rbx",
    "    OV_POP_GPRS",
    "    add rsp, 16",
    "    iretq",
    // ------------------------------------------- timer interrupt (IST3)
    // Injected only while the application runs (the monitor checks RIP): move
    // the frame to the thread's kernel stack, then it looks like a system
    // call that schedules.
    ".balign 16",
    ".global ov_timer_entry",
    "ov_timer_entry:",
    "    mov [rip + ov_irq_scratch], rax",
    // A tick injected while KVM still had an exception of the application
    // pending lands on the first instruction of that exception's handler:
    // never interrupt the library OS, drop the tick.
    "    mov rax, {user_top}",
    "    cmp [rsp], rax",
    "    jb 2f",
    "    mov rax, [rip + ov_irq_scratch]",
    "    iretq",
    "2:",
    "    mov rax, rsp",
    "    mov rsp, [rip + ov_syscall_stack_top]",
    "    push qword ptr [rax + 32]",
    "    push qword ptr [rax + 24]",
    "    push qword ptr [rax + 16]",
    "    push qword ptr [rax + 8]",
    "    push qword ptr [rax]",
    "    mov rax, [rip + ov_irq_scratch]",
    "    push 0",
    "    push 32",
    "    OV_PUSH_GPRS",
    "    mov rbx, rsp",
    "    and rsp, -16",
    "    sub rsp, 512",
    "    fxsave64 [rsp]",
    "    ldmxcsr [rip + ov_mxcsr_default]",
    "    cld",
    "    mov rdi, rbx",
    "    call ov_timer_dispatch",
    "    fxrstor64 [rsp]",
    "    mov rsp, rbx",
    "    OV_POP_GPRS",
    "    add rsp, 16",
    "    iretq",
    // ------------------------------------------ kernel context switch
    // ov_switch_to(prev_ksp: *mut u64 (rdi), next_ksp: u64 (rsi))
    ".balign 16",
    ".global ov_switch_to",
    "ov_switch_to:",
    "    push rbp",
    "    push rbx",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov [rdi], rsp",
    "    mov rsp, rsi",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    "    ret",
    // A new thread's first switch lands here, on a kernel stack holding a
    // SyscallFrame (registers + iret frame) prepared by clone.
    ".balign 16",
    ".global ov_thread_start",
    "ov_thread_start:",
    "    call ov_thread_started",
    "    fninit",
    "    ldmxcsr [rip + ov_mxcsr_default]",
    "    OV_POP_GPRS",
    "    iretq",
    // External interrupts: none are injected; return.
    ".balign 16",
    ".global ov_interrupt_entry",
    "ov_interrupt_entry:",
    "    iretq",
    // ---------------------------------------------------- enter the app
    ".balign 16",
    ".global ov_enter_user",
    "ov_enter_user:",
    "    fninit",
    "    ldmxcsr [rip + ov_mxcsr_default]",
    "    pxor xmm0, xmm0",
    "    pxor xmm1, xmm1",
    "    push {user_ss}",
    "    push rsi",
    "    push 0x202",
    "    push {user_cs}",
    "    push rdi",
    "    xor eax, eax",
    "    xor ebx, ebx",
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    xor esi, esi",
    "    xor edi, edi",
    "    xor ebp, ebp",
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    xor r10d, r10d",
    "    xor r11d, r11d",
    "    xor r12d, r12d",
    "    xor r13d, r13d",
    "    xor r14d, r14d",
    "    xor r15d, r15d",
    "    iretq",
    // ------------------------------------------------- exception table
    ".section .rodata.ov_exc, \"a\"",
    ".balign 8",
    ".global ov_exception_table",
    "ov_exception_table:",
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    ".quad ov_exc_\\v",
    ".endr",
    ".text",
    magic = const LIBOS_MAGIC,
    version = const ABI_VERSION,
    hsize = const HEADER_SIZE,
    stack = const BOOT_STACK_SIZE,
    user_ss = const USER_SS,
    user_cs = const USER_CS,
    user_top = const optivolt_abi::layout::USER_TOP,
    frame_rip = const core::mem::offset_of!(SyscallFrame, rip),
    frame_rflags = const core::mem::offset_of!(SyscallFrame, rflags),
);

// The C library functions that `core` and `compiler_builtins` call.
global_asm!(
    ".section .text.ov_libc, \"ax\"",
    ".global memcpy",
    "memcpy:",
    "    mov rax, rdi",
    "    mov rcx, rdx",
    "    rep movsb",
    "    ret",
    ".global memmove",
    "memmove:",
    "    mov rax, rdi",
    "    mov rcx, rdx",
    "    cmp rdi, rsi",
    "    jbe 2f",
    "    lea rsi, [rsi + rdx - 1]",
    "    lea rdi, [rdi + rdx - 1]",
    "    std",
    "    rep movsb",
    "    cld",
    "    ret",
    "2:",
    "    rep movsb",
    "    ret",
    ".global memset",
    "memset:",
    "    mov r8, rdi",
    "    mov eax, esi",
    "    mov rcx, rdx",
    "    rep stosb",
    "    mov rax, r8",
    "    ret",
    ".global memcmp",
    ".global bcmp",
    "memcmp:",
    "bcmp:",
    "    xor eax, eax",
    "    test rdx, rdx",
    "    jz 4f",
    "3:",
    "    movzx eax, byte ptr [rdi]",
    "    movzx ecx, byte ptr [rsi]",
    "    sub eax, ecx",
    "    jnz 4f",
    "    inc rdi",
    "    inc rsi",
    "    dec rdx",
    "    jnz 3b",
    "4:",
    "    ret",
    ".global rust_eh_personality",
    "rust_eh_personality:",
    "    ud2",
    ".text",
);
