/* ProcessPrng for Wine 8.0 (Debian 12), which lacks it.
 *
 * Rust's std (1.78 and later) takes its random bytes from ProcessPrng in
 * bcryptprimitives.dll; Wine added that export in 8.13. Without it no Rust
 * program starts under Debian's Wine. This DLL, built with mingw-w64 by
 * scripts/test-windows.sh and put beside the test executables (the
 * program's own directory is searched first), supplies it through
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * Only for running braid's tests under Wine; never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
