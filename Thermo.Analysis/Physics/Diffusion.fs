namespace Thermo.Analysis.Physics

/// Mean squared displacement curves (docs/THEORY.md "Diffusion").
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

    /// The mean over a group of equal-length trajectories of their time-averaged MSDs, for lags
    /// τ = 1..N−1, in O(N log N) per weight (docs/THEORY.md, "Diffusion"): MSD_k(τ) = (S1_k(τ) − 2·S2_k(τ)) / (N−τ),
    /// with S1 a running sum of squares and S2 the autocorrelation sums (the algorithm of MD analysis
    /// tools). S2 is linear in the power spectrum, so the group's spectra are summed and transformed
    /// back once: two weights share each forward FFT (as real and imaginary part, zero-padded to
    /// ≥ 2N so circular correlation equals linear), and the cross terms of the pair, odd in frequency,
    /// fall into the imaginary part of the inverse transform, which is dropped. Each trajectory is
    /// centred first, which leaves every displacement unchanged and keeps the cancellation small.
    /// Equals the mean of `msdDirect` to floating-point accuracy.
    let groupMsd (trajectories: float[][]) : float[] =
        let count = trajectories.Length
        if count = 0 then invalidArg "trajectories" "a group needs at least one trajectory"
        let n = trajectories[0].Length
        for t in trajectories do
            if t.Length <> n then invalidArg "trajectories" "the trajectories of a group must have the same length"
        if n < 2 then [||]
        else
            let size = Fft.nextPowerOfTwo (2 * n)
            let re = Array.zeroCreate<float> size
            let im = Array.zeroCreate<float> size
            let spectrum = Array.zeroCreate<float> size
            let s1 = Array.zeroCreate<float> n
            // Writes the centred trajectory into target[0..N−1] and adds its S1(τ) to s1.
            let centreInto (x: float[]) (target: float[]) =
                let mutable mean = 0.0
                for v in x do mean <- mean + v
                mean <- mean / float n
                let mutable q = 0.0
                for i in 0 .. n - 1 do
                    let y = x[i] - mean
                    target[i] <- y
                    q <- q + 2.0 * y * y
                for tau in 1 .. n - 1 do
                    q <- q - target[tau - 1] * target[tau - 1] - target[n - tau] * target[n - tau]
                    s1[tau] <- s1[tau] + q
            let mutable w = 0
            while w < count do
                centreInto trajectories[w] re
                if w + 1 < count then centreInto trajectories[w + 1] im else System.Array.Clear(im, 0, n)
                System.Array.Clear(re, n, size - n)
                System.Array.Clear(im, n, size - n)
                Fft.transformInPlace re im -1.0
                for k in 0 .. size - 1 do
                    spectrum[k] <- spectrum[k] + re[k] * re[k] + im[k] * im[k]
                w <- w + 2
            System.Array.Clear im
            Fft.transformInPlace spectrum im 1.0
            Array.init (n - 1) (fun i ->
                let tau = i + 1
                max 0.0 ((s1[tau] - 2.0 * spectrum[tau] / float size) / float (n - tau)) / float count)

    /// Time-averaged MSD of one trajectory for lags τ = 1..N−1 in O(N log N) (see `groupMsd`).
    /// Equals `msdDirect` to floating-point accuracy.
    let msd (x: float[]) : float[] = groupMsd [| x |]

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
        let count = float trajectories.Length
        let msd = Diffusion.groupMsd trajectories
        let md = Array.zeroCreate lags
        // The drift correction is linear: mean_k (MSD_k(τ) − (v̄_k τ)²) = MSD(τ) − τ²·mean_k v̄_k².
        let mutable meanSquareDrift = 0.0
        for x in trajectories do
            let d = Diffusion.meanDisplacement x
            for i in 0 .. lags - 1 do md[i] <- md[i] + abs d[i]
            let driftPerLag = (x[lags] - x[0]) / float lags
            meanSquareDrift <- meanSquareDrift + driftPerLag * driftPerLag / count
        { Lags = Array.init lags (fun i -> i + 1)
          Msd = msd
          AbsMeanDisplacement = md |> Array.map (fun v -> v / count)
          DriftCorrectedMsd = msd |> Array.mapi (fun i m -> m - meanSquareDrift * float ((i + 1) * (i + 1))) }

    /// Most distinct lags an unevenly spaced series keeps as they are; beyond it, pairs are binned.
    [<Literal>]
    let DistinctLagLimit = 64

    /// Number of logarithmic lag bins when an uneven series has more distinct lags than `DistinctLagLimit`.
    [<Literal>]
    let LagBins = 32

    /// Curves of a group on an unevenly spaced series (docs/THEORY.md, "Unevenly spaced snapshots"):
    /// lags in time over all pairs of snapshots (i < j), lag t_j − t_i. Each distinct lag is its own
    /// point when there are at most `DistinctLagLimit` of them; otherwise pairs fall into `LagBins`
    /// logarithmic bins between the smallest and the largest lag. A point's lag is the mean lag of its
    /// pairs, rounded; MSD and |MD| are means over its pairs, then over weights; the drift correction
    /// subtracts mean_k v̄_k² · mean (lag²) of its pairs, v̄_k = (x_last − x_first) / (t_last − t_first).
    /// Direct sums: O(pairs × weights), cheap for the tens of checkpoints such series hold.
    let computeUneven (times: int[]) (trajectories: float[][]) : GroupDiffusion =
        if trajectories.Length = 0 then invalidArg "trajectories" "a group needs at least one weight"
        let n = times.Length
        if n < 2 then invalidArg "times" "MSD needs at least two snapshots"
        if trajectories |> Array.exists (fun x -> x.Length <> n) then invalidArg "trajectories" "one value per snapshot time"
        let pairs = [| for i in 0 .. n - 2 do for j in i + 1 .. n - 1 -> struct (i, j, times[j] - times[i]) |]
        let distinct = pairs |> Array.map (fun struct (_, _, lag) -> lag) |> Array.distinct |> Array.sort
        let binOf =
            if distinct.Length <= DistinctLagLimit then
                let index = distinct |> Array.mapi (fun b lag -> lag, b) |> dict
                fun (lag: int) -> index[lag]
            else
                let lo, hi = log (float distinct[0]), log (float distinct[distinct.Length - 1])
                fun lag -> min (LagBins - 1) (int (float LagBins * (log (float lag) - lo) / (hi - lo)))
        let bins = if distinct.Length <= DistinctLagLimit then distinct.Length else LagBins
        let members = Array.init bins (fun _ -> ResizeArray<struct (int * int * int)>())
        for struct (_, _, lag) as pair in pairs do members[binOf lag].Add pair
        let used = members |> Array.filter (fun m -> m.Count > 0)
        let count = float trajectories.Length
        let span = float (times[n - 1] - times[0])
        let meanSquareDrift = trajectories |> Array.sumBy (fun x -> ((x[n - 1] - x[0]) / span) ** 2.0) |> fun s -> s / count
        let msd = used |> Array.map (fun m ->
            trajectories |> Array.sumBy (fun x -> (m |> Seq.sumBy (fun struct (i, j, _) -> (x[j] - x[i]) ** 2.0)) / float m.Count) |> fun s -> s / count)
        let md = used |> Array.map (fun m ->
            trajectories |> Array.sumBy (fun x -> abs ((m |> Seq.sumBy (fun struct (i, j, _) -> x[j] - x[i])) / float m.Count)) |> fun s -> s / count)
        let meanLagSquared = used |> Array.map (fun m -> (m |> Seq.sumBy (fun struct (_, _, lag) -> float lag * float lag)) / float m.Count)
        { Lags = used |> Array.map (fun m -> int (System.Math.Round((m |> Seq.sumBy (fun struct (_, _, lag) -> float lag)) / float m.Count)))
          Msd = msd
          AbsMeanDisplacement = md
          DriftCorrectedMsd = Array.map2 (fun m l2 -> m - meanSquareDrift * l2) msd meanLagSquared }
