// Package bpf holds ulat's BPF program and the compiled objects that the Go
// side loads. `make bpf` builds ulat_x86.bpf.o and ulat_arm64.bpf.o from
// ulat.bpf.c (clang -target bpf; one per architecture, because the program
// reads registers at their pt_regs offsets) and records in objects.sha256
// the sources and objects of that build. The objects are committed, as
// cilium/ebpf commits its own, so that `go build` and `go vet` work on a
// fresh clone without clang; a test fails when a source no longer matches
// objects.sha256, that is when the committed objects are stale. vmlinux.h
// is generated output too (see the Makefile's vmlinux target) and
// committed, so that building does not need the build machine's BTF; CO-RE
// relocations make the objects run on other kernels.
package bpf
