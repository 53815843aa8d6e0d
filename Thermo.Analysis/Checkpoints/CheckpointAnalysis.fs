namespace Thermo.Analysis.Checkpoints

open System
open System.IO
open System.Security.Cryptography
open System.Text.Json
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine

/// The checkpoint room's face to the engine: a checkpoint series as snapshots, analysed in place
/// (streamed from the user's files, nothing written beside them) or imported into a Thermo run
/// directory. Both build the same series, so both give the same tables.
module CheckpointAnalysis =
    let private failAt path fmt = Errors.artifactAt path fmt

    /// Reads one checkpoint's header (or pickle), choosing the reader by what the path is: a sharded
    /// index (`*.index.json`), a safetensors file, or a torch.save zip file.
    [<CompiledName("ReadContents")>]
    let readContents (options: CheckpointReadOptions) (path: string) : CheckpointContents =
        let single (file: string) =
            if file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) then SafeTensors.read options file
            else TorchZip.read options file
        // A shard is read as a single file, never as another index: an index naming itself (or
        // another index) cannot send the reading round in circles.
        if path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase) then ShardedCheckpoint.read single path
        else single path

    /// Streams the tensors' values, in order, as float32: each run of consecutive tensors stored the
    /// same way (torch zip entry or safetensors file) through its reader.
    [<CompiledName("StreamValues")>]
    let streamValues (tensors: CheckpointTensor[]) (nextChunk: unit -> float32[]) (filled: float32[] -> int -> unit) : unit =
        let inZip (t: CheckpointTensor) = not (isNull t.Bytes.Entry)
        let mutable i = 0
        while i < tensors.Length do
            let zip = inZip tensors[i]
            let mutable j = i
            while j < tensors.Length && inZip tensors[j] = zip do j <- j + 1
            let run = tensors[i .. j - 1]
            if zip then TorchZip.streamValues run nextChunk filled else SafeTensors.streamValues run nextChunk filled
            i <- j

    /// The tensor directory the engine sees: (layer, tensor, shape) in the checkpoint's order. Two
    /// keys naming the same layer and tensor (`a.weight` and a bare `a`) are refused.
    [<CompiledName("DirectoryOf")>]
    let directoryOf (contents: CheckpointContents) : SnapshotReader.TensorDirectory =
        // The engine addresses a snapshot's values with 32-bit offsets.
        let total = contents.Tensors |> Array.sumBy (fun t -> t.Shape |> Array.fold (fun n d -> n * int64 d) 1L)
        if total > int64 Int32.MaxValue then
            failAt contents.Path "its analysed tensors hold %d values, more than the %d one analysis can address; leave some out (exclude by pattern)" total Int32.MaxValue
        let directory = contents.Tensors |> Array.map (fun t -> t.Layer, t.Tensor, t.Shape)
        match contents.Tensors |> Array.countBy (fun t -> t.Layer, t.Tensor) |> Array.tryFind (fun (_, c) -> c > 1) with
        | Some((layer, tensor), _) ->
            let keys = contents.Tensors |> Array.filter (fun t -> t.Layer = layer && t.Tensor = tensor) |> Array.map (fun t -> t.Key)
            failAt contents.Path "keys %s both name layer %s's %s; exclude one of them" (String.Join(" and ", keys)) layer tensor
        | None -> directory


    let private describe (inputs: string[]) =
        if inputs.Length = 1 then inputs[0] else sprintf "%s … (%d inputs)" inputs[0] inputs.Length

    /// `path` with its symbolic links resolved, one component at a time from the root, so that a
    /// link cannot hide that one path lies inside another. Components that do not exist yet are kept.
    let private realPath (path: string) =
        let full = Path.GetFullPath path
        let root = Path.GetPathRoot full
        full.Substring(root.Length).Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries)
        |> Array.fold (fun (current: string) part ->
            let next = Path.Combine(current, part)
            let info = FileInfo next
            if isNull info.LinkTarget then next
            else
                match (try info.ResolveLinkTarget true with :? IOException -> null) with
                | null -> next
                | target -> target.FullName) root

    let private inside (directory: string) (path: string) =
        path = directory || path.StartsWith(directory.TrimEnd(Path.DirectorySeparatorChar) + string Path.DirectorySeparatorChar, StringComparison.Ordinal)

    /// The directory a series lies in, the `Path` of a fault of the series as a whole (a gap in its
    /// declared spacing, too few checkpoints): the one directory given, else the innermost directory
    /// that holds every checkpoint given.
    let private seriesDirectory (inputs: string[]) (plan: CheckpointSeriesPlan) =
        match inputs with
        | [| one |] when Directory.Exists one -> one
        | _ ->
            plan.Entries
            |> Array.map (fun e -> Path.GetDirectoryName(Path.GetFullPath(Path.TrimEndingDirectorySeparator e.Source)))
            |> Array.reduce (fun common next ->
                let mutable common = common
                while not (inside common next) do
                    common <- Path.GetDirectoryName common
                common)

    /// The directories that hold the user's checkpoints: each input directory, the directory of each
    /// input file, and the output directory holding an input `checkpoint-N/` of the Hugging Face Trainer.
    let private checkpointDirectories (inputs: string[]) =
        inputs |> Array.collect (fun input ->
            let real = realPath input
            if Directory.Exists real then
                if Text.RegularExpressions.Regex.IsMatch(Path.GetFileName real, @"^checkpoint-\d+$") then [| real; Path.GetDirectoryName real |] else [| real |]
            else [| Path.GetDirectoryName real |])

    /// The directory `out` of a checkpoint series' output, checked: not inside a directory that holds
    /// the user's checkpoints (nothing is written beside them, links resolved), holding no input
    /// itself (it is replaced whole), and either absent, empty, or an output of the same kind
    /// (`isOwn`) that may be replaced.
    let private checkOutput (inputs: string[]) (out: string) (isOwn: string -> bool) (what: string) =
        let full = Path.GetFullPath(out).TrimEnd(Path.DirectorySeparatorChar)
        let real = realPath out
        for directory in checkpointDirectories inputs do
            if inside directory real then
                failAt out "lies inside %s, which holds the checkpoints; nothing is written beside them" directory
        for input in inputs do
            if inside real (realPath input) then failAt out "holds the input %s, and would be replaced whole" input
        if File.Exists full then failAt out "is a file; give a directory"
        if Directory.Exists full && not (Directory.EnumerateFileSystemEntries full |> Seq.isEmpty) && not (isOwn full) then
            failAt out "exists and is not %s; only one of those is replaced" what
        full

    /// Every checkpoint's header, read before any value (cheap beside the values), checked to hold
    /// the tensors of the first: a damaged file, a changed shape or a layer that comes or goes is
    /// refused before any work.
    let private readHeaders (plan: CheckpointSeriesPlan) (read: CheckpointReadOptions) =
        let contents = plan.Entries |> Array.map (fun e -> readContents read e.Checkpoint)
        let first = directoryOf contents[0]
        Array.iter2 (fun (entry: SeriesEntry) c ->
            SnapshotStream.requireSameTensors first plan.Entries[0].Source "the series' first checkpoint" entry.Source (directoryOf c)) plan.Entries contents
        contents

    /// Random access to a checkpoint's values when every tensor is stored in the order it is analysed
    /// (safetensors always; torch.save unless a tensor is a strided view; not a layer read with its
    /// units along dim 1).
    let private storedValues (contents: CheckpointContents) : (unit -> SnapshotValues) option =
        if contents.Tensors |> Array.forall ElementStream.isStoredInOrder then
            Some(fun () ->
                let tensors = contents.Tensors
                let inZip = tensors |> Array.mapi (fun i t -> i, t) |> Array.filter (fun (_, t) -> not (isNull t.Bytes.Entry))
                let zipRegions = Array.zip (Array.map fst inZip) (TorchZip.regions (Array.map snd inZip)) |> dict
                let regions =
                    tensors |> Array.mapi (fun i t ->
                        if isNull t.Bytes.Entry then
                            // A safetensors file: offsets count from the start of the file.
                            if not (File.Exists t.Bytes.File) then failAt t.Bytes.File "does not exist (reading '%s')" t.StoredKey
                            struct (0L, FileInfo(t.Bytes.File).Length, "the file")
                        else zipRegions[i])
                new StoredValues(tensors, regions) :> SnapshotValues)
        else None

    /// One checkpoint as a snapshot, its header already read.
    let private snapshotOf (entry: SeriesEntry) (contents: CheckpointContents) : SeriesSnapshot =
        { Time = entry.Time
          Source = entry.Source
          Directory = fun () -> directoryOf contents
          Stream = fun header nextChunk filled ->
              header (directoryOf contents)
              streamValues contents.Tensors nextChunk filled
          Values = storedValues contents }

    /// A checkpoint series in place over the window `spec` asks for: its layout's times, declared
    /// spacing (a gap is an error unless `acceptGaps`), metrics and learning rates; every header read
    /// first (`readHeaders`).
    let private seriesAndFirst (inputs: string[]) (plan: CheckpointSeriesPlan) (read: CheckpointReadOptions) (acceptGaps: bool) (spec: WindowSpec) =
        let name = describe inputs
        let contents = readHeaders plan read
        let times = plan.Entries |> Array.map (fun e -> e.Time)
        let window = SeriesWindow.resolve (seriesDirectory inputs plan) plan.TimeUnit times plan.DeclaredInterval acceptGaps plan.Metrics spec
        let inWindow = Array.zip plan.Entries contents |> Array.filter (fun (e, _) -> e.Time >= window.From && e.Time <= window.To)
        { Name = name; TimeUnit = plan.TimeUnit; Snapshots = inWindow |> Array.map (fun (e, c) -> snapshotOf e c)
          LearningRate = SeriesWindow.learningRates plan.Metrics; GradientNoise = [||]
          Source = sprintf "%s checkpoints (%O layout)" contents[0].Format plan.Layout },
        window,
        snd inWindow[0]

    [<CompiledName("Series")>]
    let series (inputs: string[]) (plan: CheckpointSeriesPlan) (read: CheckpointReadOptions) (acceptGaps: bool) (spec: WindowSpec) : AnalysisSeries * EquilibriumWindow =
        let series, window, _ = seriesAndFirst inputs plan read acceptGaps spec
        series, window

    /// Analyses a checkpoint series in place: no conversion and nothing written; memory about one
    /// checkpoint's selected values plus the accumulators, whatever the number of checkpoints.
    /// Returns the result and the window's first checkpoint's contents (what was analysed, what not).
    [<CompiledName("Analyze")>]
    let analyze (inputs: string[]) (read: CheckpointReadOptions) (acceptGaps: bool) (options: AnalysisOptions) (progress: int -> int -> unit) : AnalysisResult * CheckpointContents =
        let plan = CheckpointSeries.discover inputs
        let series, window, first = seriesAndFirst inputs plan read acceptGaps options.Window
        Engine.analyzeSeries series window options progress, first

    /// SHA-256 (hex) of the files a checkpoint's tensors come from, in order of first use, chained:
    /// one file's own digest, or for a sharded checkpoint the digest of its shards' digests.
    let private digestOf (contents: CheckpointContents) =
        let files = contents.Tensors |> Array.map (fun t -> t.Bytes.File) |> Array.distinct
        let fileDigest (file: string) =
            use stream = File.OpenRead file
            Convert.ToHexString(SHA256.HashData stream).ToLowerInvariant()
        match files with
        | [| one |] -> fileDigest one
        | many -> Convert.ToHexString(SHA256.HashData(Text.Encoding.UTF8.GetBytes(String.Join("\n", many |> Array.map fileDigest)))).ToLowerInvariant()

    /// The tensors left out, each with its reason, as the "dropped" array of run.json and tensors.json.
    let private writeDropped (json: Utf8JsonWriter) (dropped: DroppedTensor[]) =
        json.WriteStartArray "dropped"
        for d in dropped do
            json.WriteStartObject()
            json.WriteString("key", d.StoredKey)
            json.WriteString("reason", d.Reason)
            json.WriteEndObject()
        json.WriteEndArray()

    /// What `import` wrote.
    type ImportSummary =
        { Run: string
          Snapshots: int
          /// Analysed tensors (keys) and those dropped with their reason, from the first checkpoint.
          Kept: string[]
          Dropped: DroppedTensor[]
          Notes: string[] }

    /// Turns a checkpoint series into a Thermo run directory `out`: one tidy Parquet snapshot per
    /// checkpoint (float32, Thermo's schema), the source's metrics (source-metrics.parquet), and a
    /// run.json naming the layout, each snapshot's time and file, and its source's SHA-256. Written
    /// whole into a hidden sibling and swapped in, so a failure leaves nothing (or the old directory).
    /// `out` may not lie inside an input (nothing is written into the user's checkpoint
    /// directories) nor be an existing directory other than an earlier import.
    [<CompiledName("Import")>]
    let import (inputs: string[]) (read: CheckpointReadOptions) (acceptGaps: bool) (out: string) (progress: int -> int -> unit) : ImportSummary =
        let plan = CheckpointSeries.discover inputs
        let full = checkOutput inputs out ImportedRun.isImported "a run imported from checkpoints"
        let times = plan.Entries |> Array.map (fun e -> e.Time)
        let accepted = SeriesWindow.checkGaps (seriesDirectory inputs plan) plan.TimeUnit times plan.DeclaredInterval acceptGaps
        let headers = readHeaders plan read
        let first = headers[0]
        AtomicFile.replaceDirectory full (fun temp ->
            let listed =
                plan.Entries |> Array.mapi (fun i entry ->
                    progress i plan.Entries.Length
                    let contents = headers[i]
                    let directory = directoryOf contents
                    let arrays = contents.Tensors |> Array.map (fun t -> Array.zeroCreate<float32> (t.Shape |> Array.fold (*) 1))
                    let mutable tensor = 0
                    let mutable position = 0
                    let chunk = Array.zeroCreate<float32> (1 <<< 16)
                    streamValues contents.Tensors (fun () -> chunk) (fun values count ->
                        let mutable at = 0
                        while at < count do
                            while arrays[tensor].Length = position do
                                tensor <- tensor + 1
                                position <- 0
                            let take = min (count - at) (arrays[tensor].Length - position)
                            Array.blit values at arrays[tensor] position take
                            position <- position + take
                            at <- at + take)
                    let offset = ref 0
                    for t in 0 .. arrays.Length - 1 do
                        SnapshotStream.checkFinite entry.Source (TimeUnits.name plan.TimeUnit) entry.Time directory offset.Value (ReadOnlySpan arrays[t])
                        offset.Value <- offset.Value + arrays[t].Length
                    let epoch = entry.Epoch |> Option.map int |> Option.defaultValue (if plan.TimeUnit = TimeUnit.Epoch then entry.Time else 0)
                    let step = entry.Step |> Option.defaultValue (if plan.TimeUnit = TimeUnit.Step then int64 entry.Time else 0L)
                    let relative =
                        if plan.TimeUnit = TimeUnit.Step then Path.Combine(RunLayout.SnapshotsDirectory, RunLayout.StepsDirectory, SnapshotSchema.stepFileName SnapshotFileFormat.Parquet epoch (int64 entry.Time))
                        else Path.Combine(RunLayout.SnapshotsDirectory, SnapshotSchema.fileName SnapshotFileFormat.Parquet entry.Time)
                    let file = Path.Combine(temp, relative)
                    Directory.CreateDirectory(Path.GetDirectoryName file) |> ignore
                    SnapshotWriter.write SnapshotFileFormat.Parquet file
                        { Epoch = epoch; Step = step
                          Tensors = Array.map2 (fun (t: CheckpointTensor) values -> { Layer = t.Layer; Tensor = t.Tensor; Shape = t.Shape; Values = values }) contents.Tensors arrays }
                    entry, relative, contents.Format, digestOf contents)
            plan.Metrics |> Option.iter (ImportedRun.writeMetrics (RunLayout.sourceMetrics temp) plan.TimeUnit)
            use stream = File.Create(RunLayout.manifest temp)
            use json = new Utf8JsonWriter(stream, JsonWriterOptions(Indented = true))
            json.WriteStartObject()
            json.WriteString("kind", ImportedRun.Kind)
            json.WriteStartObject "config"
            json.WriteString("layout", string plan.Layout)
            json.WriteString("timeUnit", TimeUnits.name plan.TimeUnit)
            match plan.DeclaredInterval with
            | Some k -> json.WriteNumber("declaredInterval", k)
            | None -> json.WriteNull "declaredInterval"
            json.WriteBoolean("acceptGaps", acceptGaps)
            json.WriteStartArray "exclude"
            for p in read.Exclude do json.WriteStringValue p
            json.WriteEndArray()
            json.WriteStartArray "unitsAlongDim1"
            for p in read.UnitsAlongDim1 do json.WriteStringValue p
            json.WriteEndArray()
            json.WriteEndObject()
            json.WriteStartArray "inputs"
            for input in inputs do json.WriteStringValue(Path.GetFullPath input)
            json.WriteEndArray()
            json.WriteStartArray "snapshots"
            for entry, relative, format, digest in listed do
                json.WriteStartObject()
                json.WriteNumber("time", entry.Time)
                entry.Epoch |> Option.iter (fun e -> json.WriteNumber("epoch", e))
                entry.Step |> Option.iter (fun s -> json.WriteNumber("step", s))
                json.WriteString("file", relative)
                json.WriteString("source", Path.GetFullPath entry.Checkpoint)
                json.WriteString("format", format)
                json.WriteString("sourceSha256", digest)
                json.WriteEndObject()
            json.WriteEndArray()
            writeDropped json first.Dropped
            json.WriteStartArray "notes"
            for note in plan.Notes do json.WriteStringValue note
            if accepted then json.WriteStringValue(sprintf "gaps in the declared spacing accepted: %s" (String.Join(", ", SeriesWindow.missingTimes times plan.DeclaredInterval.Value)))
            json.WriteEndArray()
            json.WriteEndObject())
        progress plan.Entries.Length plan.Entries.Length
        { Run = full; Snapshots = plan.Entries.Length; Kept = first.Tensors |> Array.map (fun t -> t.Key); Dropped = first.Dropped; Notes = plan.Notes }

    /// tensors.json's "kind": what marks a directory as an analysis of checkpoints that may be replaced.
    [<Literal>]
    let TensorsKind = "thermo-checkpoint-analysis"

    /// True when `directory` is an analysis of checkpoints that `writeAnalysis` wrote: its
    /// tensors.json says so, and it holds nothing but the tables and that file.
    let private isAnalysis (directory: string) =
        let file = RunLayout.tensors directory
        let expected = Set.ofArray (Array.append RunLayout.analysisFiles [| RunLayout.TensorsFile |])
        File.Exists file
        && Directory.EnumerateFileSystemEntries directory |> Seq.forall (fun e -> expected.Contains(Path.GetFileName e))
        && (try
                use document = JsonDocument.Parse(File.ReadAllText file)
                let root = document.RootElement
                root.ValueKind = JsonValueKind.Object
                && (match root.TryGetProperty "kind" with
                    | true, kind when kind.ValueKind = JsonValueKind.String -> kind.GetString() = TensorsKind
                    | _ -> false)
            with :? JsonException -> false)

    /// Checks `directory` can take the analysis of a checkpoint series of `inputs` (see
    /// `writeAnalysis`), before any work: `ArtifactException` naming it otherwise.
    [<CompiledName("CheckAnalysisOutput")>]
    let checkAnalysisOutput (inputs: string[]) (directory: string) : unit =
        checkOutput inputs directory isAnalysis "an analysis of checkpoints" |> ignore

    /// Writes the description of a checkpoint's tensors (see `RunLayout.TensorsFile`).
    let private writeTensors (file: string) (contents: CheckpointContents) (result: AnalysisResult) =
        use stream = File.Create file
        use json = new Utf8JsonWriter(stream, JsonWriterOptions(Indented = true))
        json.WriteStartObject()
        json.WriteString("kind", TensorsKind)
        json.WriteString("source", result.Source)
        json.WriteString("timeUnit", TimeUnits.name result.TimeUnit)
        json.WriteString("spacing", result.Window.Spacing)
        json.WriteStartArray "analysed"
        for t in contents.Tensors do
            json.WriteStartObject()
            json.WriteString("key", t.Key)
            json.WriteString("storedKey", t.StoredKey)
            json.WriteString("layer", t.Layer)
            json.WriteString("tensor", t.Tensor)
            json.WriteStartArray "shape"
            for d in t.Shape do json.WriteNumberValue d
            json.WriteEndArray()
            json.WriteString("dtype", (string t.DType).ToLowerInvariant())
            json.WriteNumber("unitDim", (if t.Transposed then 1 else 0))
            json.WriteEndObject()
        json.WriteEndArray()
        writeDropped json contents.Dropped
        json.WriteEndObject()

    /// Writes the analysis of a checkpoint series into `directory`, replacing it whole: the four
    /// tables and `tensors.json` (from `contents`, the window's first checkpoint). `directory` may
    /// not lie inside an input, nor be an existing directory other than such an analysis.
    [<CompiledName("WriteAnalysis")>]
    let writeAnalysis (inputs: string[]) (directory: string) (result: AnalysisResult) (contents: CheckpointContents) : unit =
        let full = checkOutput inputs directory isAnalysis "an analysis of checkpoints"
        AtomicFile.replaceDirectory full (fun temp ->
            AnalysisOutput.fill temp result
            writeTensors (RunLayout.tensors temp) contents result)
