namespace Thermo.Analysis.Physics

open System
open Thermo.Analysis.Run

/// Decay of one layer's gradient-noise signal over a window of epochs.
type NoiseDecay =
    { Layer: string
      /// Exponential decay rate λ of the mean s_I: mean s_I(e) ≈ A·e^(−λ e). Positive means cooling.
      Rate: float
      /// R² of the log-linear fit.
      RSquared: float
      FromEpoch: int
      ToEpoch: int }

/// The epoch at which one layer's training signal s_I is largest.
type SignalPeak =
    { Layer: string
      Epoch: int
      /// The largest mean s_I.
      Signal: float }

/// Gradient-noise layer temperature (docs/THEORY.md, Musso): per-layer s_I summarised per epoch by the trainer
/// (gradnoise.parquet), and the late-time decay shared across layers.
module GradientNoise =
    /// Per-layer exponential decay of the mean s_I over epochs [fromEpoch, toEpoch], by least squares
    /// of log(mean s_I) on the epoch. Rows: (epoch, layer, mean).
    let layerDecay (rows: (int * string * float)[]) (fromEpoch: int) (toEpoch: int) : NoiseDecay[] =
        rows
        |> Array.filter (fun (e, _, m) -> e >= fromEpoch && e <= toEpoch && m > 0.0)
        |> Array.groupBy (fun (_, l, _) -> l)
        |> Array.filter (fun (_, r) -> r.Length >= 2)
        |> Array.map (fun (layer, r) ->
            let fit = Fits.line (r |> Array.map (fun (e, _, _) -> float e)) (r |> Array.map (fun (_, _, m) -> log m))
            { Layer = layer; Rate = -fit.Slope; RSquared = fit.RSquared; FromEpoch = fromEpoch; ToEpoch = toEpoch })

    /// The common decay rate of all layers: one slope with a separate intercept per layer (pooled
    /// within-layer least squares of log(mean s_I) on the epoch). Returns (rate, R² of the pooled fit).
    let commonDecay (rows: (int * string * float)[]) (fromEpoch: int) (toEpoch: int) : (float * float) option =
        let groups =
            rows
            |> Array.filter (fun (e, _, m) -> e >= fromEpoch && e <= toEpoch && m > 0.0)
            |> Array.groupBy (fun (_, l, _) -> l)
            |> Array.map (fun (_, r) -> r |> Array.map (fun (e, _, m) -> float e, log m))
            |> Array.filter (fun r -> r.Length >= 2)
        if groups.Length = 0 then None
        else
            let centred =
                groups |> Array.collect (fun r ->
                    let mx = r |> Array.averageBy fst
                    let my = r |> Array.averageBy snd
                    r |> Array.map (fun (x, y) -> x - mx, y - my))
            let sxx = centred |> Array.sumBy (fun (x, _) -> x * x)
            if sxx = 0.0 then None
            else
                let slope = (centred |> Array.sumBy (fun (x, y) -> x * y)) / sxx
                let ssTot = centred |> Array.sumBy (fun (_, y) -> y * y)
                let ssRes = centred |> Array.sumBy (fun (x, y) -> (y - slope * x) ** 2.0)
                Some(-slope, (if ssTot = 0.0 then 1.0 else 1.0 - ssRes / ssTot))

    /// Where each layer's training signal peaks: the epoch of the largest mean s_I (the first such epoch
    /// on a tie), which the partial-entropy paper takes as the end of the signal-dominated regime.
    /// Non-finite means are ignored. Layers in order of first appearance.
    [<CompiledName("SignalPeaks")>]
    let signalPeaks (rows: GradientNoiseRow[]) : SignalPeak[] =
        rows
        |> Array.filter (fun r -> Double.IsFinite r.Mean)
        |> Array.groupBy (fun r -> r.Layer)
        |> Array.map (fun (layer, r) ->
            let peak = r |> Array.sortBy (fun g -> g.Epoch) |> Array.reduce (fun best next -> if next.Mean > best.Mean then next else best)
            { Layer = layer; Epoch = peak.Epoch; Signal = peak.Mean })
