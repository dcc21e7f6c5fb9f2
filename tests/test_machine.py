from imagine.machine import cpu_description


def test_cpu_description_says_whether_bf16_is_native():
    avx2 = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma\n"
    amx = "model name\t: Intel Xeon\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16\n"
    assert cpu_description(avx2).startswith("AMD EPYC 7B13 (") and cpu_description(avx2).endswith(
        "AVX2, no native bf16)")
    assert cpu_description(amx).endswith("AVX-512, native bf16)")
    assert "AVX" not in cpu_description("")  # no /proc/cpuinfo flags (not Linux): the core count only
