namespace Thermo.Analysis

open System
open System.IO

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

/// Reading back the tables `AnalysisOutput` writes.
module AnalysisTables =
    let private fail fmt = Errors.artifact fmt

    let private readTemperature (run: string) =
        let path = RunLayout.temperature run
        if not (IO.File.Exists path) then
            fail "%s: not analysed (no %s)" run (IO.Path.Combine(RunLayout.AnalysisDirectory, RunLayout.TemperatureFile))
        path, Tables.readByName path AnalysisOutput.TemperatureTable

    /// The layers with per-unit rows in RUN/analysis/temperature.parquet, in file order.
    [<CompiledName("UnitLayers")>]
    let unitLayers (run: string) : string[] =
        let path, c = readTemperature run
        let layers, grouping = Tables.strings path c "layer", Tables.strings path c "grouping"
        Array.zip layers grouping |> Array.filter (fun (_, g) -> g = "unit") |> Array.map fst |> Array.distinct

    /// The per-unit temperatures and L1 norms of `layer` (rows with grouping "unit"), sorted by unit.
    /// Raises `ArtifactException` when the run is not analysed or its units are not numbered 0..n−1,
    /// and `SettingException` ("Layer", see `LayerCheck.Analysed`) when the layer has no per-unit rows.
    [<CompiledName("UnitTemperatures")>]
    let unitTemperatures (run: string) (layer: string) : UnitTemperatures =
        let path, c = readTemperature run
        let layers, grouping, units = Tables.strings path c "layer", Tables.strings path c "grouping", Tables.int32s path c "unit"
        let rows =
            Seq.init layers.Length id
            |> Seq.filter (fun i -> layers[i] = layer && grouping[i] = "unit")
            |> Seq.sortBy (fun i -> units[i]) // stable, as the readers this replaces
            |> Seq.toArray
        if rows.Length = 0 then
            LayerCheck.Analysed(run, layer, Array.zip layers grouping |> Array.filter (fun (_, g) -> g = "unit") |> Array.map fst |> Array.distinct)
        if rows |> Array.mapi (fun j i -> units[i] <> j) |> Array.exists id then
            fail "%s: the filters of layer '%s' are not numbered 0..%d" path layer (rows.Length - 1)
        let pick name = let v = Tables.float64s path c name in rows |> Array.map (fun i -> v[i])
        let from, until = Tables.int32s path c "window_from", Tables.int32s path c "window_to"
        { UnitTemperatures.Layer = layer
          Units = rows |> Array.map (fun i -> units[i])
          Temperature = pick "temperature"
          Drift = pick "drift_temperature"
          Oscillation = pick "oscillation_temperature"
          L1Norm = pick "l1_norm"
          WindowFrom = from[rows[0]]
          WindowTo = until[rows[0]] }

    /// The instantaneous temperatures T(e) of each unit of `layer` over the analysis window, from
    /// analysis/instantaneous.parquet: `result[u][i]` is unit u's temperature at the window's i-th
    /// velocity, in epoch order. Raises `ArtifactException` when the run is not analysed, the layer has no
    /// per-unit rows, or a unit lacks an epoch another has.
    [<CompiledName("UnitInstantaneous")>]
    let unitInstantaneous (run: string) (layer: string) : float[][] =
        let path = Path.Combine(RunLayout.analysis run, RunLayout.InstantaneousFile)
        if not (File.Exists path) then fail "%s: not analysed (no %s)" run path
        let c = Tables.readByName path AnalysisOutput.InstantaneousTable
        let layers, units, epochs, values = Tables.strings path c "layer", Tables.int32s path c "unit", Tables.int32s path c "epoch", Tables.float64s path c "temperature"
        let rows = Array.init layers.Length id |> Array.filter (fun i -> layers[i] = layer && units[i] >= 0)
        if rows.Length = 0 then fail "%s: no per-unit instantaneous temperatures of layer '%s'" path layer
        let byUnit = rows |> Array.groupBy (fun i -> units[i]) |> Array.sortBy fst
        let series = byUnit |> Array.map (fun (_, r) -> r |> Array.sortBy (fun i -> epochs[i]))
        let epochsOf (r: int[]) = r |> Array.map (fun i -> epochs[i])
        if series |> Array.exists (fun r -> epochsOf r <> epochsOf series[0]) then
            fail "%s: the units of layer '%s' do not share their epochs" path layer
        series |> Array.map (Array.map (fun i -> values[i]))
