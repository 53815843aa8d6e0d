namespace Thermo.Analysis.Engine

open System
open System.IO
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics
open Thermo.Analysis.Statistics

/// Writes `analyze`'s tables under RUN/analysis/. All four files are written into a temporary
/// directory which then replaces `analysis/`, so a reader never sees a mix of old and new tables.
module AnalysisOutput =
    /// Table names stored in the metadata of the analysis files.
    [<Literal>]
    let TemperatureTable = "temperature"
    [<Literal>]
    let InstantaneousTable = "instantaneous"
    [<Literal>]
    let MsdTable = "msd"
    [<Literal>]
    let FitsTable = "fits"

    let private groupingName (g: Grouping) =
        match g with
        | Grouping.Layer -> "layer"
        | Grouping.Weight -> "weight"
        | _ -> "unit"

    /// `epoch` or `step`: the unit of every epoch, window and lag column (the time_unit column).
    let timeUnitName (r: AnalysisResult) = TimeUnits.name r.TimeUnit

    /// Column set of temperature.parquet.
    let temperatureColumns (r: AnalysisResult) =
        let rows = Array.append r.Layers (if r.Grouping = Grouping.Layer then [||] else r.Groups)
        let n = rows.Length
        [ StringColumn("layer", rows |> Array.map (fun g -> g.Key.Layer))
          Int32Column("unit", rows |> Array.map (fun g -> g.Key.Unit))
          Int32Column("weight", rows |> Array.map (fun g -> g.Key.Weight))
          StringColumn("grouping", rows |> Array.map (fun g -> if g.Key.Unit < 0 then "layer" elif g.Key.Weight = -1 then "unit" else "weight"))
          Int32Column("weights", rows |> Array.map (fun g -> g.Temperature.Weights))
          Float64Column("temperature", rows |> Array.map (fun g -> g.Temperature.Temperature))
          Float64Column("drift_temperature", rows |> Array.map (fun g -> g.Temperature.Drift))
          Float64Column("oscillation_temperature", rows |> Array.map (fun g -> g.Temperature.Oscillation))
          Int32Column("rank", rows |> Array.map (fun g -> g.Rank))
          Int32Column("oscillation_rank", rows |> Array.map (fun g -> g.OscillationRank))
          Float64Column("l1_norm", rows |> Array.map (fun g -> g.L1Norm))
          Float64Column("diffusive_rate", rows |> Array.map (fun g -> g.DiffusiveRate))
          Int32Column("window_from", Array.create n r.Window.From)
          Int32Column("window_to", Array.create n r.Window.To)
          StringColumn("window_rule", Array.create n r.Window.Rule)
          StringColumn("convention", Array.create n r.Physics.Describe)
          StringColumn("time_unit", Array.create n (timeUnitName r))
          StringColumn("spacing", Array.create n r.Window.Spacing) ]

    /// instantaneous.parquet in batches built from the per-group series as they are written: this is
    /// the one table with a row per group and epoch, so it is never materialised whole.
    let private instantaneousBatches (r: AnalysisResult) =
        let series = r.Instantaneous
        let keys, values, rates, n = series.Keys, series.Values, r.DiffusiveRates.Values, series.Intervals
        let intervals = r.Window.Intervals
        let total = values.Length
        seq {
            let mutable written = 0
            while written < total || (total = 0 && written = 0) do
                let count = min Tables.RowsPerBatch (total - written)
                let layers = Array.zeroCreate count
                let units = Array.zeroCreate count
                let epochs = Array.zeroCreate count
                let temperatures = Array.sub values written count
                let dts = Array.zeroCreate count
                let perLr2 = Array.zeroCreate count
                for row in 0 .. count - 1 do
                    // Row `written + row` is group g's value at position i of its series.
                    let g, i = (written + row) / n, (written + row) % n
                    layers[row] <- keys[g].Layer
                    units[row] <- keys[g].Unit
                    epochs[row] <- r.Window.Times[1 + i]
                    dts[row] <- intervals[i]
                    // T/η²: the learning rate scales a step's velocity (T ∝ η²); NaN where η is unknown.
                    perLr2[row] <- temperatures[row] / (r.LearningRates[i] * r.LearningRates[i])
                let rates = Array.sub rates written count
                yield
                    [ StringColumn("layer", layers)
                      Int32Column("unit", units)
                      Int32Column("epoch", epochs)
                      Float64Column("temperature", temperatures)
                      Int32Column("dt", dts)
                      Float64Column("diffusive_rate", rates)
                      Float64Column("temperature_over_lr2", perLr2)
                      StringColumn("convention", Array.create count r.Physics.Describe)
                      StringColumn("time_unit", Array.create count (timeUnitName r)) ]
                written <- written + max 1 count }

    let private msdColumns (r: AnalysisResult) =
        let rows = r.Diffusion |> Array.collect (fun d -> d.Curves.Lags |> Array.mapi (fun i lag -> d.Key, lag, d.Curves.Msd[i], d.Curves.AbsMeanDisplacement[i], d.Curves.DriftCorrectedMsd[i]))
        [ StringColumn("layer", rows |> Array.map (fun (k, _, _, _, _) -> k.Layer))
          Int32Column("unit", rows |> Array.map (fun (k, _, _, _, _) -> k.Unit))
          Int32Column("lag", rows |> Array.map (fun (_, l, _, _, _) -> l))
          Float64Column("msd", rows |> Array.map (fun (_, _, m, _, _) -> m))
          Float64Column("abs_mean_displacement", rows |> Array.map (fun (_, _, _, d, _) -> d))
          Float64Column("msd_drift_corrected", rows |> Array.map (fun (_, _, _, _, c) -> c))
          StringColumn("time_unit", Array.create rows.Length (timeUnitName r)) ]

    let private fitsColumns (r: AnalysisResult) =
        let rows =
            [| for d in r.Diffusion do
                   yield d.Key.Layer, d.Key.Unit, "alpha", d.Alpha.Slope, d.Alpha.RSquared, d.Alpha.RangeFrom, d.Alpha.RangeTo, d.Alpha.Points, nan
                   yield d.Key.Layer, d.Key.Unit, "diffusion_constant", d.Diffusion.Slope, d.Diffusion.RSquared, d.Diffusion.RangeFrom, d.Diffusion.RangeTo, d.Diffusion.Points, nan
               for s in r.TemperatureL1Spearman do
                   // points: the layer's units; p_value: two-sided, t with n − 2 degrees of freedom
                   yield s.Layer, -1, "spearman_temperature_l1", s.Rho, nan, nan, nan, s.Units, PairedTests.spearmanPValue s.Rho s.Units
               for d in r.NoiseDecay do
                   yield d.Layer, -1, "gradnoise_decay_rate", d.Rate, d.RSquared, float d.FromEpoch, float d.ToEpoch, d.ToEpoch - d.FromEpoch + 1, nan
               match r.CommonNoiseDecay with
               | Some(rate, r2) ->
                   let from = float (max 1 r.Window.From)
                   yield "*", -1, "gradnoise_common_decay_rate", rate, r2, from, float r.Window.To, 0, nan
               | None -> () |]
        [ StringColumn("layer", rows |> Array.map (fun (l, _, _, _, _, _, _, _, _) -> l))
          Int32Column("unit", rows |> Array.map (fun (_, u, _, _, _, _, _, _, _) -> u))
          StringColumn("quantity", rows |> Array.map (fun (_, _, q, _, _, _, _, _, _) -> q))
          Float64Column("value", rows |> Array.map (fun (_, _, _, v, _, _, _, _, _) -> v))
          Float64Column("r_squared", rows |> Array.map (fun (_, _, _, _, r2, _, _, _, _) -> r2))
          Float64Column("lag_from", rows |> Array.map (fun (_, _, _, _, _, a, _, _, _) -> a))
          Float64Column("lag_to", rows |> Array.map (fun (_, _, _, _, _, _, b, _, _) -> b))
          Int32Column("points", rows |> Array.map (fun (_, _, _, _, _, _, _, p, _) -> p))
          Float64Column("p_value", rows |> Array.map (fun (_, _, _, _, _, _, _, _, pv) -> pv))
          StringColumn("time_unit", Array.create rows.Length (timeUnitName r)) ]

    /// Writes the four tables (temperature, instantaneous, msd, fits) into an existing directory
    /// that readers do not see yet (the caller swaps it in).
    let fill (directory: string) (result: AnalysisResult) =
        Tables.write (Path.Combine(directory, RunLayout.TemperatureFile)) TemperatureTable (temperatureColumns result)
        Tables.writeBatches (Path.Combine(directory, RunLayout.InstantaneousFile)) InstantaneousTable (instantaneousBatches result)
        Tables.write (Path.Combine(directory, RunLayout.MsdFile)) MsdTable (msdColumns result)
        Tables.write (Path.Combine(directory, RunLayout.FitsFile)) FitsTable (fitsColumns result)

    /// Writes the four tables into `directory`, replacing it whole.
    let writeTo (directory: string) (result: AnalysisResult) =
        AtomicFile.replaceDirectory directory (fun temp -> fill temp result)

    /// Where a run's analysis goes: RUN/analysis/, or RUN/analysis-steps/ for a Thermo run's
    /// per-step analysis (a run imported from checkpoints may count steps, and has only the one).
    let tablesDirectory (result: AnalysisResult) =
        let perStep = result.TimeUnit = TimeUnit.Step && not (ImportedRun.isImported result.Run)
        if perStep then RunLayout.stepAnalysis result.Run else RunLayout.analysis result.Run

    /// Writes the tables into `tablesDirectory result`, replacing it whole.
    let write (result: AnalysisResult) = writeTo (tablesDirectory result) result
