namespace Thermo.Analysis

// The C# face of the F# core: static members over plain .NET types (arrays, Func/Action, nullable,
// dictionaries), so C# never needs FSharpOption, FSharpList, ListModule or FuncConvert. Each member
// forwards to the module that owns the concept; the logic lives there.

open System
open System.Collections.Generic
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine
open Thermo.Analysis.Checkpoints

/// Small tidy Parquet tables (`Tables`), for C#.
[<AbstractClass; Sealed>]
type Table =
    /// Writes `columns` (equal lengths) as a table of kind `table`, atomically.
    static member Write(path: string, table: string, [<ParamArray>] columns: Column[]) : unit =
        Tables.write path table (List.ofArray columns)

    /// Reads a table of kind `table`, its columns by name; `ArtifactException` for a missing file,
    /// another kind of table, or unreadable data.
    static member Read(path: string, table: string) : IReadOnlyDictionary<string, Column> = Tables.readByName path table

    /// Any Thermo table of this schema version: its kind (the `thermo.table` metadata) and its columns.
    static member ReadAnyKind(path: string) : struct (string * Column[]) =
        let struct (kind, columns) = Tables.readAnyKind path
        struct (kind, List.toArray columns)

    /// The float64 column `name`; `ArtifactException` naming `path` when it is missing or of another type.
    static member GetDoubles(columns: IReadOnlyDictionary<string, Column>, name: string, path: string) : float[] =
        Tables.float64s path columns name

    /// The float32 column `name`; `ArtifactException` naming `path` when it is missing or of another type.
    static member GetFloats(columns: IReadOnlyDictionary<string, Column>, name: string, path: string) : float32[] =
        Tables.float32s path columns name

    /// The int32 column `name`; `ArtifactException` naming `path` when it is missing or of another type.
    static member GetInts(columns: IReadOnlyDictionary<string, Column>, name: string, path: string) : int[] =
        Tables.int32s path columns name

    /// The int64 column `name`; `ArtifactException` naming `path` when it is missing or of another type.
    static member GetLongs(columns: IReadOnlyDictionary<string, Column>, name: string, path: string) : int64[] =
        Tables.int64s path columns name

    /// The string column `name`; `ArtifactException` naming `path` when it is missing or of another type.
    static member GetStrings(columns: IReadOnlyDictionary<string, Column>, name: string, path: string) : string[] =
        Tables.strings path columns name

/// The analysis of a run (`Engine`, `AnalysisOutput`, `AnalysisSettings`), for C#.
[<AbstractClass; Sealed>]
type Analyzer =
    /// The most values (weights × snapshots) a layer's MSD trajectories may hold to be the default
    /// MSD layer (the first analysed layer within it, when no MSD layer is named).
    static member DefaultMsdValues = Engine.defaultMsdValues

    /// Analyses one run directory (see `Engine.analyze`).
    static member Run(run: string, options: AnalysisOptions) : AnalysisResult = Engine.analyze run options

    /// Analyses one run directory, calling `progress(done, total)` as each snapshot file is reached
    /// (null: no progress).
    static member Run(run: string, options: AnalysisOptions, progress: Action<int, int>) : AnalysisResult =
        let report = if isNull progress then (fun _ _ -> ()) else (fun d t -> progress.Invoke(d, t))
        Engine.analyzeWithProgress run options report

    /// Analyses one run's series of `unit` — per-epoch snapshots, or the per-step ones with Δt = one
    /// optimiser step (`Engine.analyzeSteps`) — with progress as above (null: none).
    static member Run(run: string, options: AnalysisOptions, unit: TimeUnit, progress: Action<int, int>) : AnalysisResult =
        let report = if isNull progress then (fun _ _ -> ()) else (fun d t -> progress.Invoke(d, t))
        Engine.analyzeSeriesWithProgress unit run options report

    /// Writes the analysis tables under RUN/analysis/ (RUN/analysis-steps/ for steps), replacing the directory whole.
    static member Write(result: AnalysisResult) : unit = AnalysisOutput.write result

    /// The directory `Write` writes the result's tables into.
    static member TablesDirectory(result: AnalysisResult) : string = AnalysisOutput.tablesDirectory result

    /// The anomalous-diffusion exponent α of MSD ∝ τ^α fitted over lags fromLag..toLag (see
    /// `Fits.anomalousExponent`), and the fit's R²; NaN for both where no fit can be made.
    static member FitAlpha(lags: int[], msd: float[], fromLag: int, toLag: int) : struct (float * float) =
        try
            let fit = Fits.anomalousExponent lags msd fromLag toLag
            struct (fit.Slope, fit.RSquared)
        with :? ArgumentException -> struct (nan, nan)

    /// `auto`, `last:N` or `a:b`; `SettingException` (`Window`) otherwise.
    static member ParseWindow(text: string) : WindowSpec = WindowSpec.Parse text

    /// N of a `last:N` window; null for any other text (`auto`, `a:b`, or not a window at all).
    static member TryParseLast(text: string) : Nullable<int> =
        match Window.parse text with
        | Ok(Last n) -> Nullable n
        | _ -> Nullable()

    /// `layer`, `filter`/`unit`/`row` or `weight`; `SettingException` (`Groups`) otherwise.
    static member ParseGrouping(text: string) : Grouping = AnalysisSettings.parseGrouping text

    /// `a:b` with 1 ≤ a < b; `SettingException` (`FitLags`) otherwise.
    static member ParseFitLags(text: string) : struct (int * int) = AnalysisSettings.parseFitLags text

    /// Options from plain values: null `layers` means every layer with weights, null `msdLayers` the
    /// first analysed layer (empty: none), null `fitLags` the default lag ranges.
    static member Options
        (window: WindowSpec, grouping: Grouping, layers: string[], includeBias: bool, physics: Physics,
         msdLayers: string[], fitLags: Nullable<struct (int * int)>) : AnalysisOptions =
        AnalysisOptions.Default
            .WithWindow(window).WithGrouping(grouping).WithLayers(layers).WithIncludeBias(includeBias)
            .WithPhysics(physics).WithMsdLayers(msdLayers).WithFitLags(fitLags)

/// Files and directories written so that readers only see complete ones (`AtomicFile`), for C#.
[<AbstractClass; Sealed>]
type AtomicFiles =
    /// Calls `write` with a temporary path beside `path`, then renames it onto `path`.
    static member Write(path: string, write: Action<string>) : unit = AtomicFile.write path write.Invoke

    /// Writes `text` to `path` atomically (UTF-8, no byte-order mark).
    static member WriteAllText(path: string, text: string) : unit = AtomicFile.writeAllText path text

    /// Fills a temporary sibling directory, then swaps it in place of `path` (see `AtomicFile.replaceDirectory`).
    static member ReplaceDirectory(path: string, fill: Action<string>) : unit = AtomicFile.replaceDirectory path fill.Invoke

    /// As `ReplaceDirectory(path, fill)`, returning what `fill` returns.
    static member ReplaceDirectory<'T>(path: string, fill: Func<string, 'T>) : 'T = AtomicFile.replaceDirectory path fill.Invoke

/// One tensor of a snapshot's tensor directory (`SnapshotReader.TensorDirectory`), for C#.
type TensorEntry =
    { /// Module name (`conv1`, `fc`, …).
      Layer: string
      /// Tensor name inside the module (`weight`, `bias`, …).
      Tensor: string
      /// Full shape; its product is the tensor's number of values.
      Shape: int[] }

/// Reading snapshot files (`SnapshotReader`), for C#.
[<AbstractClass; Sealed>]
type Snapshots =
    /// Streams a snapshot's values in directory order into chunks from `nextChunk`: `header(epoch, step,
    /// directory)` first, the directory's tensors in row order, then `filled(chunk, count)` per chunk
    /// (see `SnapshotReader.streamValues`).
    static member StreamValues
        (path: string, header: Action<int, int64, TensorEntry[]>, nextChunk: Func<float32[]>,
         filled: Action<float32[], int>) : unit =
        let entries (directory: SnapshotReader.TensorDirectory) =
            directory |> Array.map (fun (layer, tensor, shape) -> { TensorEntry.Layer = layer; Tensor = tensor; Shape = shape })
        SnapshotReader.streamValues path (fun e s d -> header.Invoke(e, s, entries d)) nextChunk.Invoke (fun c n -> filled.Invoke(c, n))

    /// The analysis engine's velocity kernel: Σ (current_i − latest_i)² in float64, then latest ← current
    /// (`VelocityKernels.stepSquares`), so a live view sums a snapshot's squared steps as `analyze` does.
    static member StepSquares(current: ReadOnlySpan<float32>, latest: Span<float32>) : float =
        VelocityKernels.stepSquares (current, latest)

    /// The snapshot files of a run directory to follow, in time order, and the time's unit: a Thermo
    /// run's per-epoch files as its run.json declares them, or the snapshots an imported checkpoint
    /// series' run.json lists (a missing one is an `ArtifactException`).
    static member SeriesFiles(run: string) : struct (TimeUnit * SnapshotFile[]) =
        if ImportedRun.isImported run then
            let manifest = ImportedRun.readManifest run
            struct (manifest.TimeUnit, ImportedRun.listedFiles run manifest)
        else struct (TimeUnit.Epoch, SnapshotSeries.epochFiles run SnapshotSpacing.FromManifest)

    /// True when run.json says the run was imported from a checkpoint series (complete by construction).
    static member IsImported(run: string) : bool = ImportedRun.isImported run

    /// An imported run's source metrics as metrics rows (time as the epoch; loss, eval loss and eval
    /// accuracy as train loss, test loss and test accuracy; NaN where the source logged none); empty
    /// without them.
    static member ImportedMetrics(run: string) : MetricsRow[] =
        match ImportedRun.readMetrics run with
        | None -> [||]
        | Some m ->
            Array.init m.Time.Length (fun i ->
                { MetricsRow.Epoch = m.Time[i]; Step = int64 m.Time[i]; TrainLoss = m.Loss[i]; TrainAccuracy = nan
                  TestLoss = m.EvalLoss[i]; TestAccuracy = m.EvalAccuracy[i]; Lr = m.LearningRate[i]; BatchSize = 0
                  TrainSeconds = nan; EvalSeconds = nan; SnapshotSeconds = nan; ImagesPerSecond = nan })

    /// Writes `snapshot` to `path` as Parquet, atomically (see `SnapshotWriter.write`).
    static member Write(path: string, snapshot: Snapshot) : unit = SnapshotWriter.write SnapshotFileFormat.Parquet path snapshot

    /// The file name of epoch `epoch`'s Parquet snapshot (epoch=NNNNN.parquet).
    static member FileName(epoch: int) : string = SnapshotSchema.fileName SnapshotFileFormat.Parquet epoch

/// Checkpoint series of other trainers (`CheckpointAnalysis`, `PruneMask`), for C#.
[<AbstractClass; Sealed>]
type CheckpointRuns =
    /// Reading settings: keys excluded by glob pattern, layers whose 2-D tensors hold their units
    /// along dim 1 (null: none).
    static member ReadOptions(exclude: string[], unitsAlongDim1: string[]) : CheckpointReadOptions =
        { Exclude = (if isNull exclude then [||] else exclude); UnitsAlongDim1 = (if isNull unitsAlongDim1 then [||] else unitsAlongDim1) }

    /// True when `path` is a checkpoint file (.pt, .pth, .bin, .ckpt, .safetensors, a sharded
    /// `*.index.json`) or a directory that is not a Thermo run (no run.json, no snapshots/).
    static member IsCheckpointInput(path: string) : bool =
        if IO.File.Exists path then CheckpointSeries.isCheckpointFile path
        else IO.Directory.Exists path && not (IO.File.Exists(RunLayout.manifest path)) && not (IO.Directory.Exists(RunLayout.snapshots path))

    /// Analyses a checkpoint series in place (see `CheckpointAnalysis.analyze`), with progress (null: none).
    static member Analyze(inputs: string[], read: CheckpointReadOptions, acceptGaps: bool, options: AnalysisOptions, progress: Action<int, int>)
        : struct (AnalysisResult * CheckpointContents) =
        let report = if isNull progress then (fun _ _ -> ()) else (fun d t -> progress.Invoke(d, t))
        let result, contents = CheckpointAnalysis.analyze inputs read acceptGaps options report
        struct (result, contents)

    /// Checks, before any work, that `directory` can take the analysis of the checkpoint series `inputs`.
    static member CheckAnalysisOutput(inputs: string[], directory: string) : unit =
        CheckpointAnalysis.checkAnalysisOutput inputs directory

    /// Writes the tables and tensors.json of a checkpoint series' analysis into `directory`.
    static member WriteAnalysis(inputs: string[], directory: string, result: AnalysisResult, contents: CheckpointContents) : unit =
        CheckpointAnalysis.writeAnalysis inputs directory result contents

    /// Turns a checkpoint series into a Thermo run directory (see `CheckpointAnalysis.import`).
    static member Import(inputs: string[], read: CheckpointReadOptions, acceptGaps: bool, out: string, progress: Action<int, int>)
        : CheckpointAnalysis.ImportSummary =
        let report = if isNull progress then (fun _ _ -> ()) else (fun d t -> progress.Invoke(d, t))
        CheckpointAnalysis.import inputs read acceptGaps out report

    /// The prune mask of the `count` hottest or coldest units of each layer (null: every layer with
    /// unit rows) of a temperature table, as the JSON text of a thermo-prune-mask/1 file.
    static member PruneMask(temperatureFile: string, criterion: string, count: int, layers: string[], includeBias: bool) : string =
        let selected = PruneMask.select temperatureFile criterion count (Option.ofObj layers)
        PruneMask.toJson criterion (PruneMask.entries temperatureFile selected includeBias)
