namespace Thermo.Analysis.Engine

open System
open System.IO
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics

/// The per-unit temperatures of one layer from RUN/analysis/temperature.parquet, sorted by unit, with
/// the window they were measured over.
[<RequireQualifiedAccess>]
type UnitTemperatures =
    { Layer: string
      /// 0 .. n−1.
      Units: int[]
      /// Equilibrium temperature of each unit.
      Temperature: float[]
      /// Drift temperature of each unit.
      Drift: float[]
      /// Oscillation (drift-corrected) temperature of each unit.
      Oscillation: float[]
      /// Σ|w| of each unit at the window's last snapshot.
      L1Norm: float[]
      /// The window [WindowFrom, WindowTo] of snapshot indices.
      WindowFrom: int
      WindowTo: int }

/// RUN/analysis/temperature.parquet as its readers use it, column by column: one row per layer,
/// unit or weight (`Grouping`: "layer", "unit" or "weight"), in file order.
[<RequireQualifiedAccess>]
type TemperatureColumns =
    { Layer: string[]
      /// The unit's index; −1 on a layer's row.
      Unit: int[]
      Grouping: string[]
      /// Equilibrium temperature.
      Temperature: float[]
      Drift: float[]
      /// Oscillation (drift-corrected) temperature.
      Oscillation: float[]
      /// 1 = hottest within its layer.
      Rank: int[]
      /// Σ|w| at the window's last snapshot.
      L1Norm: float[]
      /// The window [WindowFrom, WindowTo] of snapshot indices (the same on every row).
      WindowFrom: int[]
      WindowTo: int[]
      /// How T was computed (the same on every row).
      Convention: string[] }

/// RUN/analysis/instantaneous.parquet as its readers use it: T(e) of each layer (unit −1) and unit at
/// each time of the window, one row each.
[<RequireQualifiedAccess>]
type InstantaneousColumns =
    { Layer: string[]
      /// The unit's index; −1 on a layer's row.
      Unit: int[]
      /// The time (the epoch column: an epoch, or a step where `TimeUnit` says so).
      Time: int[]
      Temperature: float[]
      /// The interval each velocity spans, ending at `Time` (the dt column); empty for a table written
      /// before the column existed, whose series were evenly spaced.
      Dt: int[]
      /// The unit of `Time`: the time_unit column's, epoch for a table without one.
      TimeUnit: TimeUnit }

/// RUN/analysis/msd.parquet as its readers use it: one row per layer, unit and lag.
[<RequireQualifiedAccess>]
type MsdColumns =
    { Layer: string[]
      Unit: int[]
      Lag: int[]
      /// Time-averaged mean squared displacement.
      Msd: float[]
      /// Mean |displacement|.
      AbsMeanDisplacement: float[]
      /// MSD less the drift's (v̄τ)².
      MsdDriftCorrected: float[] }

/// RUN/analysis/fits.parquet as its readers use it: one fitted quantity per row (alpha,
/// diffusion_constant, …) of a layer or unit.
[<RequireQualifiedAccess>]
type FitsColumns =
    { Layer: string[]
      /// The unit's index; −1 for a layer's quantity.
      Unit: int[]
      Quantity: string[]
      Value: float[]
      RSquared: float[] }

/// The one check of a layer a setting names (`Layer`: the layer to prune, or to draw per filter), with
/// one wording wherever it is made: `SettingException` ("Layer") naming the run and the layers there are.
[<AbstractClass; Sealed>]
type LayerCheck =
    /// The setting these checks are about.
    static member Setting = "Layer"

    /// `SettingException` ("Layer") unless `layers` holds `layer`: "RUN: has no layer 'conv9' (layers: a, b)".
    static member Exists(run: string, layer: string, layers: seq<string>) : unit =
        let layers = Seq.toArray layers
        if not (Array.contains layer layers) then
            let known = if layers.Length = 0 then "none" else String.Join(", ", layers)
            raise (SettingException(LayerCheck.Setting, run, sprintf "has no layer '%s' (layers: %s)" layer known))

    /// `SettingException` ("Layer") unless `analysed` (the layers with per-filter temperatures) holds
    /// `layer`: "RUN: layer 'fc' has no per-filter temperatures (per-filter layers analysed: a, b)".
    static member Analysed(run: string, layer: string, analysed: seq<string>) : unit =
        let analysed = Seq.toArray analysed
        if not (Array.contains layer analysed) then
            let known = if analysed.Length = 0 then "none" else String.Join(", ", analysed)
            raise (SettingException(LayerCheck.Setting, run, sprintf "layer '%s' has no per-filter temperatures (per-filter layers analysed: %s)" layer known))

/// Reading back the tables `AnalysisOutput` writes: one typed reader per table, the one place their
/// column names are read by.
module AnalysisTables =
    let private failAt path fmt = Errors.artifactAt path fmt

    /// Table `table` at `path` and its column getters by name (strings, int32s, float64s), each an
    /// `ArtifactException` naming `path` for a missing or mistyped column.
    let private columns (path: string) (table: string) =
        let c = Tables.readByName path table
        c, Tables.strings path c, Tables.int32s path c, Tables.float64s path c

    /// RUN/analysis/temperature.parquet at `path`; `ArtifactException` for a missing or mistyped column.
    [<CompiledName("ReadTemperature")>]
    let readTemperature (path: string) : TemperatureColumns =
        let _, text, ints, floats = columns path AnalysisOutput.TemperatureTable
        { TemperatureColumns.Layer = text "layer"; Unit = ints "unit"; Grouping = text "grouping"
          Temperature = floats "temperature"; Drift = floats "drift_temperature"; Oscillation = floats "oscillation_temperature"
          Rank = ints "rank"; L1Norm = floats "l1_norm"
          WindowFrom = ints "window_from"; WindowTo = ints "window_to"; Convention = text "convention" }

    /// RUN/analysis/instantaneous.parquet at `path`; `ArtifactException` for a missing or mistyped column,
    /// or an interval `dt` below 1.
    [<CompiledName("ReadInstantaneous")>]
    let readInstantaneous (path: string) : InstantaneousColumns =
        let c, text, ints, floats = columns path AnalysisOutput.InstantaneousTable
        let unitName = if c.ContainsKey "time_unit" then text "time_unit" |> Array.tryHead else None
        let dt = if c.ContainsKey "dt" then ints "dt" else [||]
        // Readers weight T(e) by its interval (the report's windows): a non-positive one is no interval.
        match dt |> Array.tryFindIndex (fun d -> d < 1) with
        | Some row -> failAt path "column dt holds %d at row %d; an interval is at least 1" dt[row] row
        | None -> ()
        { InstantaneousColumns.Layer = text "layer"; Unit = ints "unit"; Time = ints "epoch"; Temperature = floats "temperature"
          Dt = dt
          TimeUnit = unitName |> Option.map TimeUnits.parse |> Option.defaultValue TimeUnit.Epoch }

    /// RUN/analysis/msd.parquet at `path`; `ArtifactException` for a missing or mistyped column.
    [<CompiledName("ReadMsd")>]
    let readMsd (path: string) : MsdColumns =
        let _, text, ints, floats = columns path AnalysisOutput.MsdTable
        { MsdColumns.Layer = text "layer"; Unit = ints "unit"; Lag = ints "lag"; Msd = floats "msd"
          AbsMeanDisplacement = floats "abs_mean_displacement"; MsdDriftCorrected = floats "msd_drift_corrected" }

    /// RUN/analysis/fits.parquet at `path`; `ArtifactException` for a missing or mistyped column.
    [<CompiledName("ReadFits")>]
    let readFits (path: string) : FitsColumns =
        let _, text, ints, floats = columns path AnalysisOutput.FitsTable
        { FitsColumns.Layer = text "layer"; Unit = ints "unit"; Quantity = text "quantity"; Value = floats "value"; RSquared = floats "r_squared" }

    let private temperatureOf (run: string) =
        let path = RunLayout.temperature run
        if not (IO.File.Exists path) then
            failAt run "not analysed (no %s)" (IO.Path.Combine(RunLayout.AnalysisDirectory, RunLayout.TemperatureFile))
        path, readTemperature path

    let private unitLayersOf (t: TemperatureColumns) =
        Array.zip t.Layer t.Grouping |> Array.filter (fun (_, g) -> g = "unit") |> Array.map fst |> Array.distinct

    /// The layers with per-unit rows in RUN/analysis/temperature.parquet, in file order.
    [<CompiledName("UnitLayers")>]
    let unitLayers (run: string) : string[] = unitLayersOf (snd (temperatureOf run))

    /// The per-unit temperatures and L1 norms of `layer` (rows with grouping "unit"), sorted by unit.
    /// Raises `ArtifactException` when the run is not analysed or its units are not numbered 0..n−1,
    /// and `SettingException` ("Layer", see `LayerCheck.Analysed`) when the layer has no per-unit rows.
    [<CompiledName("UnitTemperatures")>]
    let unitTemperatures (run: string) (layer: string) : UnitTemperatures =
        let path, t = temperatureOf run
        let units = t.Unit
        let rows =
            Seq.init t.Layer.Length id
            |> Seq.filter (fun i -> t.Layer[i] = layer && t.Grouping[i] = "unit")
            |> Seq.sortBy (fun i -> units[i]) // stable, as the readers this replaces
            |> Seq.toArray
        if rows.Length = 0 then
            LayerCheck.Analysed(run, layer, unitLayersOf t)
        if rows |> Array.mapi (fun j i -> units[i] <> j) |> Array.exists id then
            failAt path "the filters of layer '%s' are not numbered 0..%d" layer (rows.Length - 1)
        let pick (v: float[]) = rows |> Array.map (fun i -> v[i])
        { UnitTemperatures.Layer = layer
          Units = rows |> Array.map (fun i -> units[i])
          Temperature = pick t.Temperature
          Drift = pick t.Drift
          Oscillation = pick t.Oscillation
          L1Norm = pick t.L1Norm
          WindowFrom = t.WindowFrom[rows[0]]
          WindowTo = t.WindowTo[rows[0]] }

    /// The instantaneous temperatures T(e) of each unit of `layer` over the analysis window, from
    /// analysis/instantaneous.parquet: `result[u][i]` is unit u's temperature at the window's i-th
    /// velocity, in epoch order. Raises `ArtifactException` when the run is not analysed, the layer has no
    /// per-unit rows, or a unit lacks an epoch another has.
    [<CompiledName("UnitInstantaneous")>]
    let unitInstantaneous (run: string) (layer: string) : float[][] =
        let path = Path.Combine(RunLayout.analysis run, RunLayout.InstantaneousFile)
        if not (File.Exists path) then failAt run "not analysed (no %s)" path
        let t = readInstantaneous path
        let layers, units, epochs, values = t.Layer, t.Unit, t.Time, t.Temperature
        let rows = Array.init layers.Length id |> Array.filter (fun i -> layers[i] = layer && units[i] >= 0)
        if rows.Length = 0 then failAt path "no per-unit instantaneous temperatures of layer '%s'" layer
        let byUnit = rows |> Array.groupBy (fun i -> units[i]) |> Array.sortBy fst
        let series = byUnit |> Array.map (fun (_, r) -> r |> Array.sortBy (fun i -> epochs[i]))
        let epochsOf (r: int[]) = r |> Array.map (fun i -> epochs[i])
        if series |> Array.exists (fun r -> epochsOf r <> epochsOf series[0]) then
            failAt path "the units of layer '%s' do not share their epochs" layer
        series |> Array.map (Array.map (fun i -> values[i]))
