namespace Thermo.Analysis.Physics

#nowarn "9" // NativePtr in the butterflies: pinned arrays, indices bounded by the loops

open Microsoft.FSharp.NativeInterop

/// The fast Fourier transform the MSD curves are computed with (`Diffusion.groupMsd`): a complex,
/// in-place, radix-2 transform of a power-of-two length, with its bit-reversal and twiddle tables
/// made once per length. Its own module because it is general numerics, not diffusion physics.
module Fft =
    /// The smallest power of two ≥ n (1 for n ≤ 1): the length a transform of n points is padded to.
    let internal nextPowerOfTwo n =
        let mutable p = 1
        while p < n do p <- p <<< 1
        p

    /// A radix-2 transform of one size: the bit-reversal swaps and every stage's twiddles laid out
    /// contiguously (stage of half-length h at h−1 .. 2h−2), so the butterflies read their twiddles in
    /// order. Made once per size; the trigonometry dominated otherwise.
    type private FftPlan = { Swaps: int[]; Cos: float[]; Sin: float[] }

    let private plans = System.Collections.Concurrent.ConcurrentDictionary<int, FftPlan>()

    let private planOf (n: int) =
        plans.GetOrAdd(n, fun n ->
            let swaps = ResizeArray()
            let mutable j = 0
            for i in 1 .. n - 1 do
                let mutable bit = n >>> 1
                while j &&& bit <> 0 do
                    j <- j ^^^ bit
                    bit <- bit >>> 1
                j <- j ||| bit
                if i < j then
                    swaps.Add i
                    swaps.Add j
            let cosTable = Array.zeroCreate (max 1 (n - 1))
            let sinTable = Array.zeroCreate (max 1 (n - 1))
            let mutable h = 1
            while h < n do
                for k in 0 .. h - 1 do
                    cosTable[h - 1 + k] <- cos (System.Math.PI * float k / float h)
                    sinTable[h - 1 + k] <- sin (System.Math.PI * float k / float h)
                h <- h <<< 1
            { Swaps = swaps.ToArray(); Cos = cosTable; Sin = sinTable })

    /// In-place iterative radix-2 FFT of (re, im), length a power of two, without scaling
    /// (sign −1 forward, +1 inverse). Hand-written because MathNet's managed transform measured about
    /// 200–300 µs for 2048 points here, too slow for one MSD per weight; tests check it against MathNet.
    /// The butterflies run over pinned pointers: with bounds checks the 2048-point transform took
    /// about 70 µs here, without them about a fifth of that.
    let transformInPlace (re: float[]) (im: float[]) (sign: float) =
        let n = re.Length
        if im.Length <> n then invalidArg "im" "re and im must have the same length"
        if n &&& (n - 1) <> 0 then invalidArg "re" "the length must be a power of two"
        if n > 1 then
            let plan = planOf n
            use pr = fixed re
            use pi = fixed im
            use pc = fixed plan.Cos
            use ps = fixed plan.Sin
            let swaps = plan.Swaps
            let mutable s = 0
            while s < swaps.Length do
                let i = swaps[s]
                let j = swaps[s + 1]
                let tr = NativePtr.get pr i
                NativePtr.set pr i (NativePtr.get pr j)
                NativePtr.set pr j tr
                let ti = NativePtr.get pi i
                NativePtr.set pi i (NativePtr.get pi j)
                NativePtr.set pi j ti
                s <- s + 2
            // The first two stages in one pass, as radix-4 butterflies: their twiddles are 1 and ±i,
            // so they need no multiplications.
            if n = 2 then
                let xr = NativePtr.get pr 1
                let xi = NativePtr.get pi 1
                let ar = NativePtr.get pr 0
                let ai = NativePtr.get pi 0
                NativePtr.set pr 1 (ar - xr)
                NativePtr.set pi 1 (ai - xi)
                NativePtr.set pr 0 (ar + xr)
                NativePtr.set pi 0 (ai + xi)
            else
                let mutable a = 0
                while a < n do
                    let r0 = NativePtr.get pr a
                    let i0 = NativePtr.get pi a
                    let r1 = NativePtr.get pr (a + 1)
                    let i1 = NativePtr.get pi (a + 1)
                    let r2 = NativePtr.get pr (a + 2)
                    let i2 = NativePtr.get pi (a + 2)
                    let r3 = NativePtr.get pr (a + 3)
                    let i3 = NativePtr.get pi (a + 3)
                    // stage 1: (0,1) and (2,3)
                    let sr0, si0, dr1, di1 = r0 + r1, i0 + i1, r0 - r1, i0 - i1
                    let sr2, si2, dr3, di3 = r2 + r3, i2 + i3, r2 - r3, i2 - i3
                    // stage 2: twiddle 1 for (0,2), sign·i for (1,3)
                    let tr = -sign * di3
                    let ti = sign * dr3
                    NativePtr.set pr a (sr0 + sr2)
                    NativePtr.set pi a (si0 + si2)
                    NativePtr.set pr (a + 2) (sr0 - sr2)
                    NativePtr.set pi (a + 2) (si0 - si2)
                    NativePtr.set pr (a + 1) (dr1 + tr)
                    NativePtr.set pi (a + 1) (di1 + ti)
                    NativePtr.set pr (a + 3) (dr1 - tr)
                    NativePtr.set pi (a + 3) (di1 - ti)
                    a <- a + 4
            let width = System.Numerics.Vector<float>.Count
            let signs = System.Numerics.Vector<float>(sign)
            let mutable half = 4
            while half < n do
                // twiddles of this stage: e^(sign·iπk/half) at plan index half − 1 + k
                let wc = NativePtr.add pc (half - 1)
                let ws = NativePtr.add ps (half - 1)
                let mutable start = 0
                while start < n do
                    let lowRe = NativePtr.add pr start
                    let lowIm = NativePtr.add pi start
                    let highRe = NativePtr.add pr (start + half)
                    let highIm = NativePtr.add pi (start + half)
                    let mutable k = 0
                    // Stages with half ≥ one SIMD register run their butterflies a register at a time.
                    while k + width <= half do
                        let wr = System.Numerics.Vector.Load(NativePtr.add wc k)
                        let wi = signs * System.Numerics.Vector.Load(NativePtr.add ws k)
                        let br = System.Numerics.Vector.Load(NativePtr.add highRe k)
                        let bi = System.Numerics.Vector.Load(NativePtr.add highIm k)
                        let xr = br * wr - bi * wi
                        let xi = br * wi + bi * wr
                        let ar = System.Numerics.Vector.Load(NativePtr.add lowRe k)
                        let ai = System.Numerics.Vector.Load(NativePtr.add lowIm k)
                        System.Numerics.Vector.Store(ar - xr, NativePtr.add highRe k)
                        System.Numerics.Vector.Store(ai - xi, NativePtr.add highIm k)
                        System.Numerics.Vector.Store(ar + xr, NativePtr.add lowRe k)
                        System.Numerics.Vector.Store(ai + xi, NativePtr.add lowIm k)
                        k <- k + width
                    while k < half do
                        let wr = NativePtr.get wc k
                        let wi = sign * NativePtr.get ws k
                        let br = NativePtr.get highRe k
                        let bi = NativePtr.get highIm k
                        let xr = br * wr - bi * wi
                        let xi = br * wi + bi * wr
                        let ar = NativePtr.get lowRe k
                        let ai = NativePtr.get lowIm k
                        NativePtr.set highRe k (ar - xr)
                        NativePtr.set highIm k (ai - xi)
                        NativePtr.set lowRe k (ar + xr)
                        NativePtr.set lowIm k (ai + xi)
                        k <- k + 1
                    start <- start + 2 * half
                half <- half <<< 1
