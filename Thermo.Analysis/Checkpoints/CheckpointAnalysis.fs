namespace Thermo.Analysis.Checkpoints

open System
open System.IO
open System.Security.Cryptography
open System.Text.Json
open Thermo.Analysis

/// The checkpoint room's face to the engine: a checkpoint series as snapshots, analysed in place
/// (streamed from the user's files, nothing written beside them) or imported into a Thermo run
/// directory. Both build the same series, so both give the same tables.
module CheckpointAnalysis =
    let private fail fmt = Errors.artifact fmt

    /// Reads one checkpoint's header (or pickle), choosing the reader by what the path is: a sharded
    /// index (`*.index.json`), a safetensors file, or a torch.save zip file.
    [<CompiledName("ReadContents")>]
    let rec readContents (options: CheckpointReadOptions) (path: string) : CheckpointContents =
        let name = Path.GetFileName(path).ToLowerInvariant()
        if name.EndsWith ".index.json" then ShardedCheckpoint.read (readContents options) path
        elif name.EndsWith ".safetensors" then SafeTensors.read options path
        else TorchZip.read options path

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
        let directory = contents.Tensors |> Array.map (fun t -> t.Layer, t.Tensor, t.Shape)
        match contents.Tensors |> Array.countBy (fun t -> t.Layer, t.Tensor) |> Array.tryFind (fun (_, c) -> c > 1) with
        | Some((layer, tensor), _) ->
            let keys = contents.Tensors |> Array.filter (fun t -> t.Layer = layer && t.Tensor = tensor) |> Array.map (fun t -> t.Key)
            fail "%s: keys %s both name layer %s's %s; exclude one of them" contents.Path (String.Join(" and ", keys)) layer tensor
        | None -> directory

    let private timeName (plan: CheckpointSeriesPlan) = if plan.TimeUnit = TimeUnit.Step then "step" else "epoch"

    let private describe (plan: CheckpointSeriesPlan) (inputs: string[]) =
        if inputs.Length = 1 then inputs[0] else sprintf "%s … (%d inputs)" inputs[0] inputs.Length

    /// The directory `out` of a checkpoint series' output, checked: not inside an input (nothing is
    /// written into the user's checkpoint directories), and either absent, empty, or an output of
    /// the same kind (`isOwn`) that may be replaced.
    let private checkOutput (inputs: string[]) (out: string) (isOwn: string -> bool) (what: string) =
        let full = Path.GetFullPath(out).TrimEnd(Path.DirectorySeparatorChar)
        for input in inputs do
            let inputFull = Path.GetFullPath(input).TrimEnd(Path.DirectorySeparatorChar)
            if Directory.Exists inputFull && (full = inputFull || full.StartsWith(inputFull + string Path.DirectorySeparatorChar)) then
                fail "%s: lies inside the checkpoint directory %s; nothing is written beside the checkpoints" out input
        if File.Exists full then fail "%s: is a file; give a directory" out
        if Directory.Exists full && not (Directory.EnumerateFileSystemEntries full |> Seq.isEmpty) && not (isOwn full) then
            fail "%s: exists and is not %s; only one of those is replaced" out what
        full

    /// One checkpoint as a snapshot, its header already read.
    let private snapshotOf (entry: SeriesEntry) (contents: CheckpointContents) : SeriesSnapshot =
        { Time = entry.Time
          Source = entry.Source
          Directory = fun () -> directoryOf contents
          Stream = fun header nextChunk filled ->
              header (directoryOf contents)
              streamValues contents.Tensors nextChunk filled }

    /// A checkpoint series in place over the window `spec` asks for: its layout's times, declared
    /// spacing (a gap is an error unless `acceptGaps`), metrics and learning rates. Every
    /// checkpoint's header is read first (cheap beside its values), so a damaged file, a changed
    /// shape or a layer that comes or goes is refused before any value is streamed.
    [<CompiledName("Series")>]
    let series (inputs: string[]) (plan: CheckpointSeriesPlan) (read: CheckpointReadOptions) (acceptGaps: bool) (spec: WindowSpec) : AnalysisSeries * EquilibriumWindow =
        let name = describe plan inputs
        let contents = plan.Entries |> Array.map (fun e -> readContents read e.Checkpoint)
        let first = directoryOf contents[0]
        Array.iter2 (fun (entry: SeriesEntry) c ->
            let directory = directoryOf c
            if directory <> first then
                fail "%s: its tensors differ from those of %s, the series' first checkpoint%s" entry.Source plan.Entries[0].Source
                    (SnapshotStream.describeDifference first directory)) plan.Entries contents
        let times = plan.Entries |> Array.map (fun e -> e.Time)
        let window = SeriesWindow.resolve name plan.TimeUnit times plan.DeclaredInterval acceptGaps plan.Metrics spec
        let inWindow = Array.zip plan.Entries contents |> Array.filter (fun (e, _) -> e.Time >= window.From && e.Time <= window.To)
        { Name = name; TimeUnit = plan.TimeUnit; Snapshots = inWindow |> Array.map (fun (e, c) -> snapshotOf e c)
          LearningRate = SeriesWindow.learningRates plan.Metrics; GradientNoise = [||]
          Source = sprintf "%s checkpoints (%O layout)" contents[0].Format plan.Layout },
        window

    /// Analyses a checkpoint series in place: no conversion and nothing written; memory about one
    /// checkpoint's selected values plus the accumulators, whatever the number of checkpoints.
    /// Returns the result and the window's first checkpoint's contents (what was analysed, what not).
    [<CompiledName("Analyze")>]
    let analyze (inputs: string[]) (read: CheckpointReadOptions) (acceptGaps: bool) (options: AnalysisOptions) (progress: int -> int -> unit) : AnalysisResult * CheckpointContents =
        let plan = CheckpointSeries.discover inputs
        let series, window = series inputs plan read acceptGaps options.Window
        let first = series.Snapshots[0]
        Engine.analyzeSeries series window options progress, readContents read (plan.Entries |> Array.find (fun e -> e.Time = first.Time)).Checkpoint

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
        let name = describe plan inputs
        let accepted = SeriesWindow.checkGaps name (timeName plan) times plan.DeclaredInterval acceptGaps
        let first = readContents read plan.Entries[0].Checkpoint
        let firstDirectory = directoryOf first
        AtomicFile.replaceDirectory full (fun temp ->
            let listed =
                plan.Entries |> Array.mapi (fun i entry ->
                    progress i plan.Entries.Length
                    let contents = if i = 0 then first else readContents read entry.Checkpoint
                    let directory = directoryOf contents
                    if directory <> firstDirectory then
                        fail "%s: its tensors differ from those of %s, the series' first checkpoint%s" entry.Source plan.Entries[0].Source
                            (SnapshotStream.describeDifference firstDirectory directory)
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
                        SnapshotStream.checkFinite entry.Source (timeName plan) entry.Time directory offset.Value (ReadOnlySpan arrays[t])
                        offset.Value <- offset.Value + arrays[t].Length
                    let epoch = entry.Epoch |> Option.map int |> Option.defaultValue (if plan.TimeUnit = TimeUnit.Epoch then entry.Time else 0)
                    let step = entry.Step |> Option.defaultValue (if plan.TimeUnit = TimeUnit.Step then int64 entry.Time else 0L)
                    let relative =
                        if plan.TimeUnit = TimeUnit.Step then Path.Combine("snapshots", "steps", SnapshotSchema.stepFileName SnapshotFileFormat.Parquet epoch (int64 entry.Time))
                        else Path.Combine("snapshots", SnapshotSchema.fileName SnapshotFileFormat.Parquet entry.Time)
                    let file = Path.Combine(temp, relative)
                    Directory.CreateDirectory(Path.GetDirectoryName file) |> ignore
                    SnapshotWriter.write SnapshotFileFormat.Parquet file
                        { Epoch = epoch; Step = step
                          Tensors = Array.map2 (fun (t: CheckpointTensor) values -> { Layer = t.Layer; Tensor = t.Tensor; Shape = t.Shape; Values = values }) contents.Tensors arrays }
                    entry, relative, contents.Format, digestOf contents)
            plan.Metrics |> Option.iter (ImportedRun.writeMetrics (Path.Combine(temp, ImportedRun.MetricsFile)) plan.TimeUnit)
            use stream = File.Create(RunLayout.manifest temp)
            use json = new Utf8JsonWriter(stream, JsonWriterOptions(Indented = true))
            json.WriteStartObject()
            json.WriteString("kind", ImportedRun.Kind)
            json.WriteStartObject "config"
            json.WriteString("layout", string plan.Layout)
            json.WriteString("timeUnit", timeName plan)
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
            json.WriteStartArray "dropped"
            for d in first.Dropped do
                json.WriteStartObject()
                json.WriteString("key", d.StoredKey)
                json.WriteString("reason", d.Reason)
                json.WriteEndObject()
            json.WriteEndArray()
            json.WriteStartArray "notes"
            for note in plan.Notes do json.WriteStringValue note
            if accepted then json.WriteStringValue(sprintf "gaps in the declared spacing accepted: %s" (String.Join(", ", SeriesWindow.missingTimes times plan.DeclaredInterval.Value)))
            json.WriteEndArray()
            json.WriteEndObject())
        progress plan.Entries.Length plan.Entries.Length
        { Run = full; Snapshots = plan.Entries.Length; Kept = first.Tensors |> Array.map (fun t -> t.Key); Dropped = first.Dropped; Notes = plan.Notes }

    /// The file beside the analysis tables of a checkpoint series that says which tensors were
    /// analysed (key, layer, shape, dtype, the dimension of its units) and which were not, and why.
    [<Literal>]
    let TensorsFile = "tensors.json"

    /// Writes the description of a checkpoint's tensors (see `TensorsFile`).
    let private writeTensors (file: string) (contents: CheckpointContents) (result: AnalysisResult) =
        use stream = File.Create file
        use json = new Utf8JsonWriter(stream, JsonWriterOptions(Indented = true))
        json.WriteStartObject()
        json.WriteString("source", result.Source)
        json.WriteString("timeUnit", (if result.TimeUnit = TimeUnit.Step then "step" else "epoch"))
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
        json.WriteStartArray "dropped"
        for d in contents.Dropped do
            json.WriteStartObject()
            json.WriteString("key", d.StoredKey)
            json.WriteString("reason", d.Reason)
            json.WriteEndObject()
        json.WriteEndArray()
        json.WriteEndObject()

    /// Writes the analysis of a checkpoint series into `directory`, replacing it whole: the four
    /// tables and `tensors.json` (from `contents`, the window's first checkpoint). `directory` may
    /// not lie inside an input, nor be an existing directory other than such an analysis.
    [<CompiledName("WriteAnalysis")>]
    let writeAnalysis (inputs: string[]) (directory: string) (result: AnalysisResult) (contents: CheckpointContents) : unit =
        let full = checkOutput inputs directory (fun d -> File.Exists(Path.Combine(d, TensorsFile))) "an analysis of checkpoints"
        AtomicFile.replaceDirectory full (fun temp ->
            AnalysisOutput.fill temp result
            writeTensors (Path.Combine(temp, TensorsFile)) contents result)
