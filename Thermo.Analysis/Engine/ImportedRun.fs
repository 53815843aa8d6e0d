namespace Thermo.Analysis.Engine

open System
open System.IO
open System.Text.Json
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics

/// A run directory made by `import` from a checkpoint series: Thermo snapshot files, the source's
/// metrics, and a run.json that lists every snapshot with its time coordinate and the digest of the
/// file it came from. Its analysis reads the listed files with the checkpoint series' window rules
/// (unevenly spaced by design), so it gives the tables the in-place analysis gives, to the last bit.
module ImportedRun =
    let private failAt path fmt = Errors.artifactAt path fmt

    /// run.json's "kind" for an imported series.
    [<Literal>]
    let Kind = "imported-checkpoints"

    /// Table name of source-metrics.parquet.
    [<Literal>]
    let MetricsTable = "source_metrics"

    /// One snapshot as run.json lists it.
    type ListedSnapshot =
        { Time: int
          /// Path inside the run directory.
          File: string
          /// The checkpoint it came from, as given to `import`.
          Source: string
          /// SHA-256 of the checkpoint's weight files (hex), as read when imported.
          SourceSha256: string }

    /// What run.json of an imported run says.
    type Manifest =
        { Layout: string
          TimeUnit: TimeUnit
          DeclaredInterval: int option
          AcceptGaps: bool
          Snapshots: ListedSnapshot[] }

    let private path run = RunLayout.manifest run

    /// True when RUN/run.json says the run was imported from checkpoints.
    [<CompiledName("IsImported")>]
    let isImported (run: string) : bool =
        let file = path run
        File.Exists file
        && (try
                use document = JsonDocument.Parse(File.ReadAllText file)
                let root = document.RootElement
                // Anything else (not JSON, not an object) is for the manifest check to name.
                root.ValueKind = JsonValueKind.Object
                && (match root.TryGetProperty "kind" with
                    | true, kind when kind.ValueKind = JsonValueKind.String -> kind.GetString() = Kind
                    | _ -> false)
            with :? JsonException -> false)

    /// Reads the manifest of an imported run; `ArtifactException` naming run.json for anything missing.
    [<CompiledName("ReadManifest")>]
    let readManifest (run: string) : Manifest =
        let file = path run
        try
            use document = JsonDocument.Parse(File.ReadAllText file)
            let root = document.RootElement
            let config = root.GetProperty "config"
            let text (e: JsonElement) (name: string) = e.GetProperty(name).GetString()
            let snapshots =
                root.GetProperty("snapshots").EnumerateArray()
                |> Seq.map (fun s -> { Time = s.GetProperty("time").GetInt32(); File = text s "file"; Source = text s "source"; SourceSha256 = text s "sourceSha256" })
                |> Seq.toArray
            // An edited run.json must not send the reader outside the run, nor out of time order.
            for s in snapshots do
                if String.IsNullOrEmpty s.File || Path.IsPathRooted s.File || s.File.Split('/', '\\') |> Array.contains ".." then
                    failAt file "lists the snapshot file '%s', which is not a path inside the run" s.File
            if snapshots.Length < 1 || snapshots |> Array.pairwise |> Array.exists (fun (a, b) -> b.Time <= a.Time) then
                failAt file "its snapshots are not listed in strictly increasing time"
            { Layout = text config "layout"
              TimeUnit = TimeUnits.parse (text config "timeUnit")
              DeclaredInterval =
                (match config.TryGetProperty "declaredInterval" with
                 | true, v when v.ValueKind = JsonValueKind.Number -> Some(v.GetInt32())
                 | _ -> None)
              AcceptGaps = config.GetProperty("acceptGaps").GetBoolean()
              Snapshots = snapshots }
        with
        | ArtifactException _ -> reraise ()
        | :? JsonException | :? InvalidOperationException | :? Collections.Generic.KeyNotFoundException | :? FormatException | :? ArgumentException as e ->
            failAt file "not the run.json of an imported checkpoint series (%s)" e.Message

    /// Writes the source's metrics (NaN where a row lacks a quantity).
    [<CompiledName("WriteMetrics")>]
    let writeMetrics (file: string) (timeUnit: TimeUnit) (m: SeriesMetrics) =
        Tables.write file MetricsTable
            [ Int32Column("time", m.Time)
              Float64Column("loss", m.Loss)
              Float64Column("eval_loss", m.EvalLoss)
              Float64Column("eval_accuracy", m.EvalAccuracy)
              Float64Column("learning_rate", m.LearningRate)
              StringColumn("time_unit", Array.create m.Time.Length (TimeUnits.name timeUnit)) ]

    /// The source's metrics, if the run has them.
    [<CompiledName("ReadMetrics")>]
    let readMetrics (run: string) : SeriesMetrics option =
        let file = RunLayout.sourceMetrics run
        if not (File.Exists file) then None
        else
            let columns = Tables.readByName file MetricsTable
            Some
                { Time = Tables.int32s file columns "time"
                  Loss = Tables.float64s file columns "loss"
                  EvalLoss = Tables.float64s file columns "eval_loss"
                  EvalAccuracy = Tables.float64s file columns "eval_accuracy"
                  LearningRate = Tables.float64s file columns "learning_rate" }

    /// The snapshot files run.json lists, in time order; a listed file that is missing is an
    /// `ArtifactException` naming it.
    [<CompiledName("ListedFiles")>]
    let listedFiles (run: string) (manifest: Manifest) : SnapshotFile[] =
        manifest.Snapshots |> Array.map (fun s ->
            let file = Path.Combine(run, s.File)
            if not (File.Exists file) then Errors.artifactNaming file "%s: lists the snapshot %s (time %d), which does not exist" (path run) file s.Time
            { SnapshotFile.Time = s.Time; Path = file })

    /// The imported run as a series over the window `spec` asks for: the listed snapshot files (a
    /// missing one is an error naming it), the source's metrics and learning rates.
    [<CompiledName("Series")>]
    let series (run: string) (spec: WindowSpec) : AnalysisSeries * EquilibriumWindow =
        let manifest = readManifest run
        let metrics = readMetrics run
        let times = manifest.Snapshots |> Array.map (fun s -> s.Time)
        let window = SeriesWindow.resolve run manifest.TimeUnit times manifest.DeclaredInterval manifest.AcceptGaps metrics spec
        let inWindow = Set.ofArray window.Times
        let snapshots =
            listedFiles run manifest |> Array.filter (fun f -> inWindow.Contains f.Time) |> Array.map (fun f -> SeriesSnapshots.ofFile f.Time f.Path)
        { Name = run; TimeUnit = manifest.TimeUnit; Snapshots = snapshots; LearningRate = SeriesWindow.learningRates metrics
          GradientNoise = [||]; Source = sprintf "imported %s checkpoints" manifest.Layout },
        window
