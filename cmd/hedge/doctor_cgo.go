package main

// The C compiler's predefined macros under the build's CGO_CFLAGS: the same
// flags compile llama.cpp/ggml (scripts/cgo-env.sh), so they say which CPU
// extensions hedge's C code may execute. Go drops CGO_CFLAGS from the build
// info of -trimpath builds, hence this probe instead of debug.BuildInfo.

/*
static const char *hedge_compiled_features(void) {
	return ""
#if defined(__ARM_FEATURE_ATOMICS)
		" atomics"
#endif
#if defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC)
		" asimdhp"
#endif
#if defined(__ARM_FEATURE_DOTPROD)
		" asimddp"
#endif
#if defined(__AVX2__)
		" avx2"
#endif
#if defined(__FMA__)
		" fma"
#endif
#if defined(__F16C__)
		" f16c"
#endif
#if defined(__BMI2__)
		" bmi2"
#endif
#if defined(__AVX512F__)
		" avx512f"
#endif
		;
}
*/
import "C"

import "strings"

// compiledFeatures lists, in /proc/cpuinfo's names, the CPU features the
// build's C code was compiled to use unconditionally.
func compiledFeatures() []string {
	return strings.Fields(C.GoString(C.hedge_compiled_features()))
}
