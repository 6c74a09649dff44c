package bpf

import _ "embed"

// Object is the compiled CO-RE BPF object for x86-64.
//
//go:embed ulat_x86.bpf.o
var Object []byte
