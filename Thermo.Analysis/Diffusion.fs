namespace Thermo.Analysis


/// Mean squared displacement curves (SPEC.md "Diffusion").
module Diffusion =
    /// Time-averaged MSD of one trajectory x[0..N−1] for lags τ = 1..N−1, by the direct O(N²) sum:
    /// MSD(τ) = (1/(N−τ)) Σ_{e=0..N−1−τ} (x[e+τ] − x[e])². The reference for `msd`.
    let msdDirect (x: float[]) : float[] =
        let n = x.Length
        Array.init (max 0 (n - 1)) (fun i ->
            let tau = i + 1
            let mutable s = 0.0
            for e in 0 .. n - 1 - tau do
                let d = x[e + tau] - x[e]
                s <- s + d * d
            s / float (n - tau))

    let private nextPowerOfTwo n =
        let mutable p = 1
        while p < n do p <- p <<< 1
        p

    /// In-place iterative radix-2 FFT of (re, im), length a power of two, without scaling
    /// (sign −1 forward, +1 inverse). Hand-written because MathNet's managed transform measured about
    /// 200–300 µs for 2048 points here, too slow for one MSD per weight; tests check it against MathNet.
    let private twiddleTables = System.Collections.Concurrent.ConcurrentDictionary<int, float[] * float[]>()

    /// cos and sin of 2πk/n for k < n/2, computed once per size (the trigonometry dominated otherwise).
    let private twiddles (n: int) =
        twiddleTables.GetOrAdd(n, fun n ->
            Array.init (max 1 (n / 2)) (fun k -> cos (2.0 * System.Math.PI * float k / float n)),
            Array.init (max 1 (n / 2)) (fun k -> sin (2.0 * System.Math.PI * float k / float n)))

    let fftInPlace (re: float[]) (im: float[]) (sign: float) =
        let n = re.Length
        let cosTable, sinTable = twiddles n
        let mutable j = 0
        for i in 1 .. n - 1 do
            let mutable bit = n >>> 1
            while j &&& bit <> 0 do
                j <- j ^^^ bit
                bit <- bit >>> 1
            j <- j ||| bit
            if i < j then
                let tr = re[i] in re[i] <- re[j]; re[j] <- tr
                let ti = im[i] in im[i] <- im[j]; im[j] <- ti
        let mutable length = 2
        while length <= n do
            let half = length / 2
            let stride = n / length
            let mutable start = 0
            while start < n do
                for k in 0 .. half - 1 do
                    let a = start + k
                    let b = a + half
                    // twiddle e^(sign·2πi·k/length) = table entry k·(n/length)
                    let wr = cosTable[k * stride]
                    let wi = sign * sinTable[k * stride]
                    let xr = re[b] * wr - im[b] * wi
                    let xi = re[b] * wi + im[b] * wr
                    re[b] <- re[a] - xr
                    im[b] <- im[a] - xi
                    re[a] <- re[a] + xr
                    im[a] <- im[a] + xi
                start <- start + length
            length <- length <<< 1

    /// Autocorrelation sums S(τ) = Σ_{i=0..N−1−τ} x[i]·x[i+τ], τ = 0..N−1, of two real sequences of
    /// equal length at once: one complex FFT of x + i·y (zero-padded to ≥ 2N, so circular correlation
    /// equals linear), the two power spectra separated by the conjugate symmetry of real signals, and
    /// one inverse FFT whose real and imaginary parts are the two autocorrelations. O(N log N).
    let autocorrelationSumsPair (x: float[]) (y: float[]) : float[] * float[] =
        let n = x.Length
        if y.Length <> n then invalidArg "y" "both sequences must have the same length"
        if n = 0 then [||], [||]
        else
            let size = nextPowerOfTwo (2 * n)
            let re = Array.zeroCreate<float> size
            let im = Array.zeroCreate<float> size
            Array.blit x 0 re 0 n
            Array.blit y 0 im 0 n
            fftInPlace re im -1.0
            let powerX = Array.zeroCreate<float> size
            let powerY = Array.zeroCreate<float> size
            for k in 0 .. size - 1 do
                let m = (size - k) &&& (size - 1)
                // X_k = (Z_k + conj Z_m)/2, Y_k = (Z_k − conj Z_m)/(2i)
                let sr = re[k] + re[m]
                let si = im[k] - im[m]
                let dr = re[k] - re[m]
                let di = im[k] + im[m]
                powerX[k] <- 0.25 * (sr * sr + si * si)
                powerY[k] <- 0.25 * (dr * dr + di * di)
            fftInPlace powerX powerY 1.0
            Array.init n (fun tau -> powerX[tau] / float size), Array.init n (fun tau -> powerY[tau] / float size)

    /// Autocorrelation sums of one real sequence (see `autocorrelationSumsPair`).
    let autocorrelationSums (x: float[]) : float[] = fst (autocorrelationSumsPair x (Array.zeroCreate x.Length))

    /// MSD(τ) = S1(τ) − 2·S2(τ) from a centred trajectory and its autocorrelation sums S2, with S1 the
    /// running sum of squares.
    let private msdFromAutocorrelation (y: float[]) (s2: float[]) =
        let n = y.Length
        let mutable q = 0.0
        for v in y do q <- q + 2.0 * v * v
        Array.init (n - 1) (fun i ->
            let tau = i + 1
            q <- q - y[tau - 1] * y[tau - 1] - y[n - tau] * y[n - tau]
            max 0.0 ((q - 2.0 * s2[tau]) / float (n - tau)))

    let private centred (x: float[]) =
        let mean = Array.average x
        x |> Array.map (fun v -> v - mean)

    /// Time-averaged MSD for lags τ = 1..N−1 in O(N log N): MSD(τ) = S1(τ) − 2·S2(τ), with S2 the
    /// FFT autocorrelation and S1 the running sum of squares (the algorithm of MD analysis tools).
    /// Equals `msdDirect` to floating-point accuracy. The trajectory is centred first, which leaves
    /// every displacement unchanged and keeps the cancellation small.
    let msd (x: float[]) : float[] =
        if x.Length < 2 then [||]
        else
            let y = centred x
            msdFromAutocorrelation y (autocorrelationSums y)

    /// `msd` of many trajectories, two per FFT where lengths agree (half the transforms of one at a time).
    let msdMany (trajectories: float[][]) : float[][] =
        let result = Array.zeroCreate trajectories.Length
        let mutable i = 0
        while i < trajectories.Length do
            if trajectories[i].Length < 2 then
                result[i] <- [||]
                i <- i + 1
            elif i + 1 < trajectories.Length && trajectories[i + 1].Length = trajectories[i].Length then
                let a = centred trajectories[i]
                let b = centred trajectories[i + 1]
                let sa, sb = autocorrelationSumsPair a b
                result[i] <- msdFromAutocorrelation a sa
                result[i + 1] <- msdFromAutocorrelation b sb
                i <- i + 2
            else
                result[i] <- msd trajectories[i]
                i <- i + 1
        result

    /// Mean signed displacement MD(τ) = (1/(N−τ)) Σ (x[e+τ] − x[e]) for τ = 1..N−1, in O(N) by prefix sums.
    let meanDisplacement (x: float[]) : float[] =
        let n = x.Length
        let prefix = Array.zeroCreate (n + 1)
        for i in 0 .. n - 1 do prefix[i + 1] <- prefix[i] + x[i]
        Array.init (max 0 (n - 1)) (fun i ->
            let tau = i + 1
            // Σ_{e=τ..N−1} x[e] − Σ_{e=0..N−1−τ} x[e]
            ((prefix[n] - prefix[tau]) - prefix[n - tau]) / float (n - tau))

    /// Drift-corrected MSD: MSD(τ) − (v̄·τ·Δt)², with v̄ = (x[N−1] − x[0]) / ((N−1)·Δt).
    let driftCorrected (x: float[]) (msdCurve: float[]) : float[] =
        let n = x.Length
        if n < 2 then [||]
        else
            let driftPerLag = (x[n - 1] - x[0]) / float (n - 1)
            msdCurve |> Array.mapi (fun i m -> let tau = float (i + 1) in m - (driftPerLag * tau) ** 2.0)

/// Group MSD curves: the mean over the group's weights of each weight's curve.
type GroupDiffusion =
    { /// Lags τ = 1..n (in snapshot intervals).
      Lags: int[]
      /// Mean over weights of MSD_k(τ).
      Msd: float[]
      /// Mean over weights of |MD_k(τ)|.
      AbsMeanDisplacement: float[]
      /// Mean over weights of the drift-corrected MSD_k(τ).
      DriftCorrectedMsd: float[] }

module GroupDiffusion =
    /// Curves of a group from its weights' trajectories `trajectories[k][e]`.
    let compute (trajectories: float[][]) : GroupDiffusion =
        if trajectories.Length = 0 then invalidArg "trajectories" "a group needs at least one weight"
        let lags = trajectories[0].Length - 1
        if lags < 1 then invalidArg "trajectories" "MSD needs at least two snapshots"
        let msd = Array.zeroCreate lags
        let md = Array.zeroCreate lags
        let corrected = Array.zeroCreate lags
        let curves = Diffusion.msdMany trajectories
        for w in 0 .. trajectories.Length - 1 do
            let x = trajectories[w]
            let m = curves[w]
            let d = Diffusion.meanDisplacement x
            let c = Diffusion.driftCorrected x m
            for i in 0 .. lags - 1 do
                msd[i] <- msd[i] + m[i]
                md[i] <- md[i] + abs d[i]
                corrected[i] <- corrected[i] + c[i]
        let count = float trajectories.Length
        { Lags = Array.init lags (fun i -> i + 1)
          Msd = msd |> Array.map (fun v -> v / count)
          AbsMeanDisplacement = md |> Array.map (fun v -> v / count)
          DriftCorrectedMsd = corrected |> Array.map (fun v -> v / count) }
