// Package bpf holds ulat's BPF program and the compiled object that the Go
// side loads. ulat.bpf.o is built by `make bpf` (clang -target bpf) from
// ulat.bpf.c; vmlinux.h is generated output (see the Makefile's vmlinux
// target) and committed, so that building does not need the build machine's
// BTF; CO-RE relocations make the object run on other kernels.
package bpf

import _ "embed"

// Object is the compiled CO-RE BPF object.
//
//go:embed ulat.bpf.o
var Object []byte
