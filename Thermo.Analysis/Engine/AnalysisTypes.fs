namespace Thermo.Analysis.Engine

open System
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics

/// What a temperature group is.
type Grouping =
    /// All weights of a layer.
    | Layer = 0
    /// One output unit: a conv filter W[o,:,:,:] or a linear/GCN row W[o,:].
    | Unit = 1
    /// A single weight.
    | Weight = 2

/// Options of one analysis.
type AnalysisOptions =
    { Window: WindowSpec
      Grouping: Grouping
      /// Layers to analyse (None: every layer with a `weight` tensor).
      Layers: string[] option
      /// Include each unit's bias in its group (docs/THEORY.md: weights only by default).
      IncludeBias: bool
      Physics: Physics
      /// Layers whose unit groups get MSD curves and fits (None: the first analysed layer whose
      /// trajectories, weights × snapshots, are at most 16M values; none if no layer is that small).
      MsdLayers: string[] option
      /// Lag range of the α and D fits (None: α over 1..n/2, D over 1..n/4, at least 2 lags).
      FitLags: (int * int) option
      /// Where the snapshots' spacing comes from: run.json (the default; a missing snapshot is an
      /// error), or the files alone for a run analysed without its manifest.
      Spacing: SnapshotSpacing }

    static member Default =
        { Window = Auto; Grouping = Grouping.Unit; Layers = None; IncludeBias = false; Physics = Physics.Default
          MsdLayers = None; FitLags = None; Spacing = SnapshotSpacing.FromManifest }

    // Copy-and-update for C# callers, which cannot use F#'s `{ o with … }`.

    /// These options over another window.
    member o.WithWindow(window: WindowSpec) = { o with Window = window }
    /// These options with another grouping.
    member o.WithGrouping(grouping: Grouping) = { o with Grouping = grouping }
    /// These options for the named layers only (null: every layer with weights).
    member o.WithLayers(layers: string[]) = { o with Layers = Option.ofObj layers }
    /// These options with MSD for the named layers (empty: none; null: the first analysed layer small
    /// enough, as `MsdLayers` says).
    member o.WithMsdLayers(layers: string[]) = { o with MsdLayers = Option.ofObj layers }
    /// Whether the MSD layers are left to the default rule (`MsdLayers` is None).
    member o.MsdByDefault = o.MsdLayers.IsNone
    /// These options with or without each unit's bias in its group.
    member o.WithIncludeBias(includeBias: bool) = { o with IncludeBias = includeBias }
    /// These options with other physical constants.
    member o.WithPhysics(physics: Physics) = { o with Physics = physics }
    /// These options with the snapshots' spacing from run.json or inferred from the files.
    member o.WithSpacing(spacing: SnapshotSpacing) = { o with Spacing = spacing }
    /// These options fitting α and D over lags (from, to) (null: the default ranges).
    member o.WithFitLags(lags: Nullable<struct (int * int)>) =
        { o with FitLags = if lags.HasValue then (let struct (a, b) = lags.Value in Some(a, b)) else None }

/// One layer's Spearman correlation of its units' temperature and L1-norm rankings.
type LayerSpearman =
    { Layer: string
      /// Spearman's ρ of the two rankings.
      Rho: float
      /// The units compared.
      Units: int }

/// Identity of a group: unit and weight are −1 where the grouping does not resolve them.
type GroupKey = { Layer: string; Unit: int; Weight: int }

/// One group's results.
type GroupResult =
    { Key: GroupKey
      Temperature: GroupTemperature
      /// Σ|w| of the group's weights at the window's last snapshot.
      L1Norm: float
      /// 1 = hottest group of its layer.
      Rank: int
      /// 1 = highest oscillation temperature of its layer.
      OscillationRank: int
      /// Diffusive rate over the window: (1/|G|) Σ_k Σ_i (Δw_k)² / (2 Σ_i Δt_i), the Δt-weighted mean
      /// of D_G(i) (docs/THEORY.md, "Unevenly spaced snapshots"); no mass or k_B. NaN per weight on an
      /// unevenly spaced window.
      DiffusiveRate: float }

/// One group's diffusion curves and fits.
type GroupDiffusionResult =
    { Key: GroupKey
      Curves: GroupDiffusion
      /// α from MSD ∝ τ^α.
      Alpha: FitResult
      /// D from the drift-corrected MSD ≈ 2·D·τ·Δt.
      Diffusion: FitResult }

/// One value per interval of the window for each of a list of groups, held flat: group g's values
/// are `Values[g·Intervals .. g·Intervals + Intervals − 1]`. One array instead of an array per group:
/// a language model has 10⁵ units, and an array (and a pair) each was most of an analysis's
/// per-unit allocations.
[<Sealed>]
type GroupSeries(keys: GroupKey[], intervals: int, values: float[]) =
    do
        if intervals < 0 || values.Length <> keys.Length * intervals then
            invalidArg "values" (sprintf "%d groups of %d intervals need %d values, not %d" keys.Length intervals (keys.Length * intervals) values.Length)
    /// The groups, in order.
    member _.Keys = keys
    /// Values per group: the window's intervals.
    member _.Intervals = intervals
    /// Every group's values, group after group.
    member _.Values = values
    /// Group g's values (a copy).
    member _.Item(g: int) = Array.sub values (g * intervals) intervals
    /// Each group with its values (copies), for code that wants pairs.
    member s.Pairs = keys |> Array.mapi (fun g k -> k, s[g])
    /// The values of the first group whose key satisfies `predicate`.
    member s.Find(predicate: GroupKey -> bool) = s[Array.findIndex predicate keys]
    /// Equal when the groups, their order and every value are, NaN equal to NaN (as the arrays of
    /// pairs it replaced compared).
    override s.Equals(other: obj) =
        match other with
        | :? GroupSeries as o -> o.Intervals = intervals && o.Keys = keys && LanguagePrimitives.GenericEqualityER o.Values values
        | _ -> false
    override _.GetHashCode() = HashCode.Combine(keys.Length, intervals, values.Length)

/// Everything `analyze` computes for one run.
type AnalysisResult =
    { Run: string
      /// Epochs (per-epoch snapshots) or optimiser steps (per-step snapshots): the unit of the
      /// window, Δt and every epoch column of the tables.
      TimeUnit: TimeUnit
      Window: EquilibriumWindow
      Physics: Physics
      Grouping: Grouping
      Groups: GroupResult[]
      /// Per layer: T of the whole layer.
      Layers: GroupResult[]
      /// T_G(i) for the window's snapshots i = 1..n after its first, for every layer and (with unit
      /// grouping) every unit.
      Instantaneous: GroupSeries
      /// D_G(i) = (1/|G|) Σ_k (Δw_k)² / (2 Δt_i) for the same groups and intervals as `Instantaneous`.
      DiffusiveRates: GroupSeries
      /// η at the end of each interval of the window where the source gives the learning rate per
      /// step (NaN elsewhere), for T/η².
      LearningRates: float[]
      /// Where the series came from, for outputs: "thermo run", "torch-zip checkpoints (huggingface layout)", ….
      Source: string
      Diffusion: GroupDiffusionResult[]
      /// Per layer: Spearman correlation of the units' temperature and L1-norm rankings, and the units compared.
      TemperatureL1Spearman: LayerSpearman[]
      /// Per layer: decay of the gradient-noise signal over the window (empty without gradnoise.parquet).
      NoiseDecay: NoiseDecay[]
      /// Common decay rate of all layers' gradient noise and the pooled fit's R².
      CommonNoiseDecay: (float * float) option }


/// Random access to one snapshot's values by position in its flat, directory order, for a source
/// that can seek to any value (a checkpoint's stored tensors). With it the engine reads a window's
/// snapshots side by side, a block of positions at a time, instead of one whole snapshot after
/// another.
[<AbstractClass>]
type SnapshotValues() =
    /// Fills `destination[start .. start + count − 1]` with the values at flat positions `offset ..
    /// offset + count − 1`, as float32. Safe to call from several threads at once.
    abstract Read: offset: int * destination: float32[] * start: int * count: int -> unit
    /// The files it holds open until `Dispose` (a sharded checkpoint holds one per shard): the side-by-side
    /// pass keeps every snapshot of a window open at once, so it counts them before it starts.
    abstract Files: int
    /// Closes the files it holds.
    abstract Dispose: unit -> unit
    interface IDisposable with
        member this.Dispose() = this.Dispose()

/// One snapshot of a series to analyse, whatever stores it: a Thermo snapshot file or a foreign
/// checkpoint. The engine sees only this.
type SeriesSnapshot =
    { /// Time coordinate: epoch, or optimiser step.
      Time: int
      /// The file (or checkpoint) messages name.
      Source: string
      /// Its tensor directory, from its header alone.
      Directory: unit -> SnapshotReader.TensorDirectory
      /// Streams the snapshot's values in directory order: `header directory` before any value, then
      /// `nextChunk ()` gives an array to fill and `filled chunk count` hands it back (as
      /// `SnapshotReader.streamValues`).
      Stream: (SnapshotReader.TensorDirectory -> unit) -> (unit -> float32[]) -> (float32[] -> int -> unit) -> unit
      /// Opens random access to the values, where the source allows it (`None`: streamed only).
      Values: (unit -> SnapshotValues) option }

/// Snapshots of Thermo's own files.
module SeriesSnapshots =
    /// The Thermo snapshot file `path` (Parquet or Arrow IPC) at time `time`.
    let ofFile (time: int) (path: string) : SeriesSnapshot =
        { Time = time; Source = path
          Directory = fun () -> (let _, _, directory = SnapshotReader.readHeader path in directory)
          Stream = fun header nextChunk filled -> SnapshotReader.streamValues path (fun _ _ directory -> header directory) nextChunk filled
          // Parquet and Arrow files are read in row groups and batches, not at any position.
          Values = None }

/// A series of snapshots ready for the engine: the window's snapshots, in time order, and what the
/// tables need besides the values.
type AnalysisSeries =
    { /// The run directory, or the checkpoint series as given; named in messages and tables.
      Name: string
      TimeUnit: TimeUnit
      /// The window's snapshots, sorted by time, one per time of the window.
      Snapshots: SeriesSnapshot[]
      /// (time, η) where the source gives the learning rate per step.
      LearningRate: (int * float)[]
      /// (epoch, layer, mean s_I) rows of the gradient noise (Thermo runs trained with it).
      GradientNoise: (int * string * float)[]
      /// Where the series came from, for outputs.
      Source: string }

/// Parsing the analysis settings given as text; each error is a `SettingException` whose detail reads
/// as the text after a flag.
module AnalysisSettings =
    /// `layer`, `filter` (= `unit` = `row`) or `weight`.
    [<CompiledName("ParseGrouping")>]
    let parseGrouping (text: string) : Grouping =
        match text with
        | "layer" -> Grouping.Layer
        | "filter" | "unit" | "row" -> Grouping.Unit
        | "weight" -> Grouping.Weight
        | other -> Errors.setting AnalysisSetting.Groups "" "unknown grouping '%s' (known: layer, filter, unit, row, weight)" other

    /// `a:b` with 1 ≤ a < b: the lag range of the α and D fits.
    [<CompiledName("ParseFitLags")>]
    let parseFitLags (text: string) : struct (int * int) =
        match text.Split ':' with
        | [| a; b |] ->
            match Int32.TryParse a, Int32.TryParse b with
            | (true, a), (true, b) when a >= 1 && b > a -> struct (a, b)
            | _ -> Errors.setting AnalysisSetting.FitLags "" "'%s' is not a:b with 1 ≤ a < b" text
        | _ -> Errors.setting AnalysisSetting.FitLags "" "'%s' is not a:b with 1 ≤ a < b" text
