module Thermo.Analysis.Tests.RelaxationTests

open System
open Expecto
open Thermo.Analysis.Physics

/// A synthetic run relaxing into equilibrium with time constant τ: test loss
/// 0.1 + 2·e^(−t/τ), test accuracy 0.98 − 0.9·e^(−t/τ), each with Gaussian noise, and 200 weights
/// w_i(t) = D_i·e^(−t/τ) + s·ξ_i(t), ξ iid N(0, 1). Their per-epoch velocities carry the transient
/// −D_i/τ·e^(−t/τ) on top of the equilibrium noise, whose temperature ½⟨v²⟩ is s². D_i =
/// √(2R)·s·τ·N(0, 1) makes the transient's ½v² at t = 0 R = 100 times the equilibrium temperature, for
/// every τ (the first epochs move weights far more than the last). The equilibrium part is kept apart
/// (`Noise`) so that a window's bias is measured on the same noise, free of sampling error.
type SyntheticRun =
    { Epochs: int[]
      Loss: float[]
      Accuracy: float[]
      /// Weights.[epoch][i].
      Weights: float[][]
      /// The equilibrium part s·ξ of the weights.
      Noise: float[][] }

/// Transient-to-equilibrium ratio of ½v² at t = 0.
let InitialRatio = 100.0

let private gaussian (rng: Random) =
    let u1 = 1.0 - rng.NextDouble()
    let u2 = rng.NextDouble()
    sqrt (-2.0 * log u1) * cos (2.0 * Math.PI * u2)

let synthetic (seed: int) (tau: float) (metricNoise: float) (epochs: int) : SyntheticRun =
    let rng = Random(seed)
    let s = 0.01
    let n = 200
    let amplitude = Array.init n (fun _ -> sqrt (2.0 * InitialRatio) * s * tau * gaussian rng)
    let decay e = exp (-float e / tau)
    let ts = [| 0..epochs |]
    let noise = ts |> Array.map (fun _ -> Array.init n (fun _ -> s * gaussian rng))
    { Epochs = ts
      Loss = ts |> Array.map (fun e -> 0.1 + 2.0 * decay e + metricNoise * gaussian rng)
      Accuracy = ts |> Array.map (fun e -> 0.98 - 0.9 * decay e + 0.5 * metricNoise * gaussian rng)
      Weights = ts |> Array.map (fun e -> Array.init n (fun i -> amplitude[i] * decay e + noise[e][i]))
      Noise = noise }

/// ½⟨v²⟩ over the velocities of snapshots from..to (the naive definition, written out).
let windowTemperature (weights: float[][]) (from: int) (to': int) =
    let mutable sum = 0.0
    let mutable count = 0
    for e in from + 1 .. to' do
        for i in 0 .. weights[e].Length - 1 do
            let v = weights[e][i] - weights[e - 1][i]
            sum <- sum + 0.5 * v * v
            count <- count + 1
    sum / float count

let private autoWindow (run: SyntheticRun) =
    // Epoch 0 has no training metrics; the rule sees epochs 1..E, as the engine gives them.
    Window.resolve "synthetic" run.Epochs (Some(run.Epochs[1..], run.Loss[1..], run.Accuracy[1..])) Auto

/// The window's temperature relative to its equilibrium part's alone, minus one: the transient's bias.
let private bias (run: SyntheticRun) (w: EquilibriumWindow) =
    windowTemperature run.Weights w.From w.To / windowTemperature run.Noise w.From w.To - 1.0

[<Tests>]
let tests =
    testList "the auto window on synthetic relaxations" [
        testCase "the generator's equilibrium temperature is s², and its first epochs are R times hotter" <| fun () ->
            let run = synthetic 1 5.0 0.002 200
            Expect.isLessThan (abs (windowTemperature run.Noise 0 200 / 1e-4 - 1.0)) 0.02 "s² = 1e-4 within sampling error"
            Expect.isLessThan (abs (windowTemperature run.Weights 150 200 / windowTemperature run.Noise 150 200 - 1.0)) 1e-6 "after 30 τ no transient is left"
            let first = windowTemperature run.Weights 0 1 / windowTemperature run.Noise 0 1
            Expect.isGreaterThan first (0.3 * InitialRatio) "the first epoch is hot (≈ R·e^(−1/τ)·(1 − e^(−1/τ))²·τ²)"

        testCase "auto starts after at least 3 τ with temperature bias below 5 %, for τ in 5..40 and two noise levels" <| fun () ->
            let mutable worst = 0.0
            for tau in [ 5.0; 10.0; 20.0; 40.0 ] do
                for noise in [ 0.002; 0.01 ] do
                    for seed in 1..10 do
                        let run = synthetic seed tau noise 200
                        let w = autoWindow run
                        Expect.isGreaterThanOrEqual (float w.From) (3.0 * tau) (sprintf "τ %g, noise %g, seed %d: starts at %d" tau noise seed w.From)
                        let b = bias run w
                        worst <- max worst (abs b)
                        Expect.isLessThan (abs b) 0.05 (sprintf "τ %g, noise %g, seed %d: window %d..200, bias %.3f" tau noise seed w.From b)
                        Expect.isGreaterThanOrEqual w.Velocities Window.MinimumAutoEpochs "a usable window"
            eprintfn "auto window: worst temperature bias %.4f over τ ∈ {5,10,20,40}, 2 noise levels, 10 seeds" worst

        testCase "the flatness test alone starts too early (the old rule); the paper's epoch 50 is fine only while 3 τ ≤ 50" <| fun () ->
            // The old rule: the earliest flat tail, with no relaxation-time wait.
            let flatOnly (run: SyntheticRun) =
                let epochs, loss, accuracy = run.Epochs[1..], run.Loss[1..], run.Accuracy[1..]
                let noise (y: float[]) = sqrt ((Array.pairwise y |> Array.sumBy (fun (a, b) -> (b - a) ** 2.0)) / (2.0 * float (y.Length - 1)))
                let flat s (y: float[]) =
                    let x = epochs[s..] |> Array.map float
                    abs (Fits.line x y[s..]).Slope * (x[x.Length - 1] - x[0]) <= 2.0 * noise y[s..]
                seq { 0 .. epochs.Length - Window.MinimumAutoEpochs } |> Seq.find (fun s -> flat s loss && flat s accuracy) |> fun s -> epochs[s]
            let run = synthetic 1 20.0 0.05 200
            Expect.isLessThan (float (flatOnly run)) (3.0 * 20.0) "on a noisy relaxation the flatness test alone starts before 3 τ"
            let paper = EquilibriumWindow.Even(50, 200, 1, "last:150")
            Expect.isLessThan (abs (bias (synthetic 1 10.0 0.002 200) paper)) 0.05 "τ = 10: epoch 50 is 5 τ, unbiased"
            Expect.isGreaterThan (bias (synthetic 1 40.0 0.002 200) paper) 0.05 "τ = 40: epoch 50 is 1.25 τ, biased hot"
            for tau in [ 5.0; 10.0; 20.0; 40.0 ] do
                eprintfn "τ %g: the paper's window 50..200 has bias %.4f; auto starts at %d with bias %.4f" tau
                    (bias (synthetic 1 tau 0.002 200) paper) (autoWindow (synthetic 1 tau 0.002 200)).From (bias (synthetic 1 tau 0.002 200) (autoWindow (synthetic 1 tau 0.002 200)))

        testCase "a run with no transient starts at once; a steady trend never equilibrates" <| fun () ->
            let rng = Random(5)
            let epochs = [| 1..60 |]
            let flatLoss = epochs |> Array.map (fun _ -> 0.1 + 0.002 * gaussian rng)
            let flatAccuracy = epochs |> Array.map (fun _ -> 0.98 + 0.001 * gaussian rng)
            Expect.equal (Window.findEquilibrium epochs flatLoss flatAccuracy) (Some 1) "already in equilibrium"
            Expect.equal (Window.relaxationTime epochs flatLoss) 0.0 "no transient, no relaxation time"
            Expect.isNone (Window.findEquilibrium epochs (epochs |> Array.map (fun e -> 1.0 - 0.01 * float e)) flatAccuracy) "a steady trend never equilibrates"

        testCase "the fitted relaxation time recovers τ on a noiseless decay" <| fun () ->
            for tau in [ 3.0; 12.0; 30.0 ] do
                let epochs = [| 1..200 |]
                let y = epochs |> Array.map (fun e -> 0.1 + 2.0 * exp (-float e / tau))
                Expect.floatClose { absolute = 0.0; relative = 0.05 } (Window.relaxationTime epochs y) tau (sprintf "τ %g" tau)
    ]
