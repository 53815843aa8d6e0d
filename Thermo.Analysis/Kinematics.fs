namespace Thermo.Analysis

/// How a temperature is reported (SPEC.md, "Kinematics"). Rankings do not depend on it.
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
      /// Time between consecutive snapshots.
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

/// Temperatures of one group of weights over a window (SPEC.md "Kinematics").
type GroupTemperature =
    { /// Equilibrium temperature T_G = (1/n) Σ_e T_G(e).
      Temperature: float
      /// Drift temperature: (1/|G|) Σ_k c·v̄_k².
      Drift: float
      /// Oscillation (drift-corrected) temperature T_G − T_G^drift.
      Oscillation: float
      /// |G|.
      Weights: int }

/// The kinematics of SPEC.md as pure functions over arrays of weight values.
/// Values arrive as float32 (as stored) and are accumulated in float64.
module Kinematics =
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
            physics.Factor * sum / float indices.Length

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
        let t = physics.Factor * meanSquare / float indices.Length
        let tDrift = physics.Factor * drift / float indices.Length
        { Temperature = t; Drift = tDrift; Oscillation = t - tDrift; Weights = indices.Length }

    /// Flat indices of unit `unit` of a tensor whose units hold `unitSize` values each.
    let unitIndices (unitSize: int) (unit: int) = Array.init unitSize (fun i -> unit * unitSize + i)

    /// L1 norm Σ|w| of each unit (Li et al. 2017), from the final values of a tensor.
    let unitL1Norms (unitSize: int) (values: float32[]) =
        Array.init (values.Length / unitSize) (fun u ->
            let mutable s = 0.0
            for i in u * unitSize .. (u + 1) * unitSize - 1 do s <- s + abs (float values[i])
            s)
