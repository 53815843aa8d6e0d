namespace Thermo.Analysis.Physics

/// How a temperature is reported (docs/THEORY.md, "Kinematics"). Rankings do not depend on it.
type TemperatureConvention =
    /// Kinetic: T = ½·m·v² / k_B per weight (the thermodynamic-interpretation paper).
    | Kinetic = 0
    /// Plain mean of v² (the pruning paper).
    | MeanSquare = 1

/// The physical constants of the analogy: unit mass, k_B = 1 and Δt = one snapshot interval by default.
type Physics =
    { Convention: TemperatureConvention
      Mass: float
      Boltzmann: float
      /// Time of one epoch (one optimiser step in a per-step analysis); the engine multiplies it by the
      /// window's snapshot interval to get Δt.
      Dt: float }

    static member Default = { Convention = TemperatureConvention.Kinetic; Mass = 1.0; Boltzmann = 1.0; Dt = 1.0 }

    /// Factor c with T = c·v² for one weight: ½m/k_B (kinetic) or 1 (mean square).
    member p.Factor =
        match p.Convention with
        | TemperatureConvention.MeanSquare -> 1.0
        | _ -> 0.5 * p.Mass / p.Boltzmann

    /// Name stored beside every reported temperature.
    member p.Describe =
        match p.Convention with
        | TemperatureConvention.MeanSquare -> "mean v^2"
        | _ -> sprintf "kinetic 1/2 m v^2 / k_B (m=%g, k_B=%g)" p.Mass p.Boltzmann

/// Per-weight summary of motion inside an equilibrium window [a, b] (n = b − a velocities).
type WeightMotion =
    { /// (1/n) Σ_{e=a+1..b} v_k(e)², accumulated in float64.
      MeanSquareVelocity: float[]
      /// v̄_k = (w_k(b) − w_k(a)) / (n Δt).
      DriftVelocity: float[]
      /// n: number of velocities in the window.
      Velocities: int }

/// Temperatures of one group of weights over a window (docs/THEORY.md "Kinematics").
type GroupTemperature =
    { /// Equilibrium temperature T_G = (1/n) Σ_e T_G(e).
      Temperature: float
      /// Drift temperature: (1/|G|) Σ_k c·v̄_k².
      Drift: float
      /// Oscillation (drift-corrected) temperature T_G − T_G^drift.
      Oscillation: float
      /// |G|.
      Weights: int }

/// The kinematics of docs/THEORY.md as pure functions over arrays of weight values.
/// Values arrive as float32 (as stored) and are accumulated in float64.
module Kinematics =
    /// The temperature formula, the one place it is written: T = c·(Σ v²)/count, c = `physics.Factor`
    /// (½m/k_B kinetic, 1 mean square). `sumOfSquares` is a sum of squared velocities over `count`
    /// weight-velocities (weights × epochs for an equilibrium temperature, weights for an instant).
    /// Multiplication first, then one division: every caller's bytes depend on this order.
    [<CompiledName("Temperature")>]
    let temperature (physics: Physics) (sumOfSquares: float) (count: float) = physics.Factor * sumOfSquares / count

    /// A group's temperatures from its equilibrium and drift temperatures: the oscillation temperature
    /// is their difference (docs/THEORY.md "Kinematics").
    let groupTemperatureOf (temperature: float) (drift: float) (weights: int) : GroupTemperature =
        { Temperature = temperature; Drift = drift; Oscillation = temperature - drift; Weights = weights }

    /// `start` + Σ|w| over `values`, in order (float64 accumulation): the one L1-norm loop. Taking a
    /// running sum lets a group spread over several ranges be summed as one sequence.
    let internal l1NormFrom (start: float) (values: System.ReadOnlySpan<float32>) =
        let mutable sum = start
        for i in 0 .. values.Length - 1 do sum <- sum + abs (float values[i])
        sum

    /// L1 norm Σ|w| of `values` (Li et al. 2017), accumulated in float64 in order.
    [<CompiledName("L1Norm")>]
    let l1Norm (values: float32[]) = l1NormFrom 0.0 (System.ReadOnlySpan values)

    /// Velocities v_k = (w_k(e) − w_k(e−1)) / Δt of every weight between two consecutive snapshots.
    let velocities (dt: float) (previous: float32[]) (current: float32[]) : float[] =
        if previous.Length <> current.Length then
            invalidArg "current" (sprintf "snapshots hold %d and %d values" previous.Length current.Length)
        Array.init current.Length (fun k -> (float current[k] - float previous[k]) / dt)

    /// Instantaneous temperature T_G(e) = (1/|G|) Σ_k c·v_k(e)² of the weights `indices`.
    let instantaneousTemperature (physics: Physics) (velocity: float[]) (indices: int[]) =
        if indices.Length = 0 then nan
        else
            let mutable sum = 0.0
            for k in indices do sum <- sum + velocity[k] * velocity[k]
            temperature physics sum (float indices.Length)

    /// Per-weight motion over a trajectory `values[e][k]` of the n + 1 snapshots a..b of a window.
    /// O(n·K) time, O(K) extra memory.
    let weightMotion (dt: float) (values: float32[][]) : WeightMotion =
        if values.Length < 2 then invalidArg "values" "a window needs at least two snapshots (one velocity)"
        let n = values.Length - 1
        let k = values[0].Length
        let sumSquares = Array.zeroCreate<float> k
        for e in 1..n do
            let previous, current = values[e - 1], values[e]
            if current.Length <> k then invalidArg "values" (sprintf "snapshot %d holds %d values, expected %d" e current.Length k)
            for i in 0 .. k - 1 do
                let v = (float current[i] - float previous[i]) / dt
                sumSquares[i] <- sumSquares[i] + v * v
        { MeanSquareVelocity = sumSquares |> Array.map (fun s -> s / float n)
          DriftVelocity = Array.init k (fun i -> (float (values[n].[i]) - float (values[0].[i])) / (float n * dt))
          Velocities = n }

    /// Equilibrium, drift and oscillation temperatures of the weights `indices`.
    let groupTemperature (physics: Physics) (motion: WeightMotion) (indices: int[]) : GroupTemperature =
        if indices.Length = 0 then invalidArg "indices" "a group needs at least one weight"
        let mutable meanSquare = 0.0
        let mutable drift = 0.0
        for k in indices do
            meanSquare <- meanSquare + motion.MeanSquareVelocity[k]
            drift <- drift + motion.DriftVelocity[k] * motion.DriftVelocity[k]
        groupTemperatureOf (temperature physics meanSquare (float indices.Length)) (temperature physics drift (float indices.Length)) indices.Length

    /// Flat indices of unit `unit` of a tensor whose units hold `unitSize` values each.
    let unitIndices (unitSize: int) (unit: int) = Array.init unitSize (fun i -> unit * unitSize + i)

    /// L1 norm Σ|w| of each unit (Li et al. 2017), from the final values of a tensor.
    [<CompiledName("UnitL1Norms")>]
    let unitL1Norms (unitSize: int) (values: float32[]) =
        Array.init (values.Length / unitSize) (fun u -> l1NormFrom 0.0 (System.ReadOnlySpan(values, u * unitSize, unitSize)))

/// The streaming engine's hot loops over spans of float32 weight values, so the JIT keeps them tight:
/// sums of squared differences between two snapshots (velocities times Δt). Callers scale the sums by
/// 1/Δt² (or 1/(nΔt)²) once per range, not per value. Internal: the engine's, and the tests'.
module internal VelocityKernels =
    open System
    open System.Runtime.CompilerServices
    open System.Runtime.InteropServices

    /// The float64 differences of one vector of values at `i` (its lower and upper halves), loaded
    /// without a bounds check: callers keep `i` + the vector width within both spans.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let private differencesAt (current: ReadOnlySpan<float32>, previous: ReadOnlySpan<float32>, i: int) =
        let mutable xl = Numerics.Vector<float>.Zero
        let mutable xh = Numerics.Vector<float>.Zero
        let mutable yl = Numerics.Vector<float>.Zero
        let mutable yh = Numerics.Vector<float>.Zero
        Numerics.Vector.Widen(Numerics.Vector.LoadUnsafe(&MemoryMarshal.GetReference current, unativeint i), &xl, &xh)
        Numerics.Vector.Widen(Numerics.Vector.LoadUnsafe(&MemoryMarshal.GetReference previous, unativeint i), &yl, &yh)
        struct (xl - yl, xh - yh)

    /// Σ (x_i − previous_i)² for the values of one range. SIMD: float32 lanes widened to float64
    /// before the difference, so each difference is exactly the scalar one; the squares are added
    /// (fused multiply-add) into four accumulators, two vectors of values at a time, so that the
    /// additions do not wait on one another (one accumulator made the loop wait on each addition's
    /// latency: about half as fast). The order of the additions is fixed by the code and the
    /// machine's vector width, the same for every caller: the side-by-side and the streaming passes
    /// agree to the last bit.
    let stepSquaresFrom (current: ReadOnlySpan<float32>, previous: ReadOnlySpan<float32>) =
        if previous.Length < current.Length then invalidArg "previous" "holds fewer values than current"
        let width = Numerics.Vector<float32>.Count
        let mutable acc0 = Numerics.Vector<float>.Zero
        let mutable acc1 = Numerics.Vector<float>.Zero
        let mutable acc2 = Numerics.Vector<float>.Zero
        let mutable acc3 = Numerics.Vector<float>.Zero
        let mutable i = 0
        while i + 2 * width <= current.Length do
            let struct (dl, dh) = differencesAt (current, previous, i)
            acc0 <- Numerics.Vector.FusedMultiplyAdd(dl, dl, acc0)
            acc1 <- Numerics.Vector.FusedMultiplyAdd(dh, dh, acc1)
            let struct (dl, dh) = differencesAt (current, previous, i + width)
            acc2 <- Numerics.Vector.FusedMultiplyAdd(dl, dl, acc2)
            acc3 <- Numerics.Vector.FusedMultiplyAdd(dh, dh, acc3)
            i <- i + 2 * width
        if i + width <= current.Length then
            let struct (dl, dh) = differencesAt (current, previous, i)
            acc0 <- Numerics.Vector.FusedMultiplyAdd(dl, dl, acc0)
            acc1 <- Numerics.Vector.FusedMultiplyAdd(dh, dh, acc1)
            i <- i + width
        let mutable sum = Numerics.Vector.Sum((acc0 + acc1) + (acc2 + acc3))
        while i < current.Length do
            let d = float current[i] - float previous[i]
            sum <- sum + d * d
            i <- i + 1
        sum

    /// `stepSquaresFrom (current, latest)`, then latest ← current.
    let stepSquares (current: ReadOnlySpan<float32>, latest: Span<float32>) =
        let sum = stepSquaresFrom (current, Span.op_Implicit latest)
        current.CopyTo latest
        sum

    /// `stepSquaresFrom`, also adding each weight's scaled square to `squares`.
    let stepSquaresFromInto (current: ReadOnlySpan<float32>, previous: ReadOnlySpan<float32>, squares: Span<float>, scale: float) =
        let mutable sum = 0.0
        let mutable i = 0
        while i < current.Length do
            let d = float current[i] - float previous[i]
            sum <- sum + d * d
            squares[i] <- squares[i] + d * d * scale
            i <- i + 1
        sum

    /// `stepSquaresFromInto (current, latest, …)`, then latest ← current.
    let stepSquaresInto (current: ReadOnlySpan<float32>, latest: Span<float32>, squares: Span<float>, scale: float) =
        let sum = stepSquaresFromInto (current, Span.op_Implicit latest, squares, scale)
        current.CopyTo latest
        sum

    /// Σ (b_i − a_i)², as `stepSquaresFrom (b, a)` (SIMD).
    let squaredDifferences (a: ReadOnlySpan<float32>, b: ReadOnlySpan<float32>) = stepSquaresFrom (b, a)

    /// The float64 absolute values of one vector of values at `i` (its lower and upper halves),
    /// loaded without a bounds check: callers keep `i` + the vector width within the span.
    [<MethodImpl(MethodImplOptions.AggressiveInlining)>]
    let private absolutesAt (values: ReadOnlySpan<float32>, i: int) =
        let mutable low = Numerics.Vector<float>.Zero
        let mutable high = Numerics.Vector<float>.Zero
        Numerics.Vector.Widen(Numerics.Vector.LoadUnsafe(&MemoryMarshal.GetReference values, unativeint i), &low, &high)
        struct (Numerics.Vector.Abs low, Numerics.Vector.Abs high)

    /// Σ |x_i| in float64. SIMD: lanes widened to float64 before the absolute value and the sum, so
    /// each term is exact (only the order of the additions differs from `Kinematics.l1NormFrom`);
    /// four accumulators, as `stepSquaresFrom`, so that the additions do not wait on one another.
    let absoluteSum (values: ReadOnlySpan<float32>) =
        let width = Numerics.Vector<float32>.Count
        let mutable acc0 = Numerics.Vector<float>.Zero
        let mutable acc1 = Numerics.Vector<float>.Zero
        let mutable acc2 = Numerics.Vector<float>.Zero
        let mutable acc3 = Numerics.Vector<float>.Zero
        let mutable i = 0
        while i + 2 * width <= values.Length do
            let struct (low, high) = absolutesAt (values, i)
            acc0 <- acc0 + low
            acc1 <- acc1 + high
            let struct (low, high) = absolutesAt (values, i + width)
            acc2 <- acc2 + low
            acc3 <- acc3 + high
            i <- i + 2 * width
        if i + width <= values.Length then
            let struct (low, high) = absolutesAt (values, i)
            acc0 <- acc0 + low
            acc1 <- acc1 + high
            i <- i + width
        let mutable sum = Numerics.Vector.Sum((acc0 + acc1) + (acc2 + acc3))
        while i < values.Length do
            sum <- sum + abs (float values[i])
            i <- i + 1
        sum

    /// `squaredDifferences`, also storing each scaled square in `squares`.
    let squaredDifferencesInto (a: ReadOnlySpan<float32>, b: ReadOnlySpan<float32>, squares: Span<float>, scale: float) =
        let mutable sum = 0.0
        let mutable i = 0
        while i < a.Length do
            let d = float b[i] - float a[i]
            sum <- sum + d * d
            squares[i] <- d * d * scale
            i <- i + 1
        sum
