namespace Thermo.Analysis.Checkpoints

open System
open System.Globalization
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open Thermo.Analysis
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine

/// How a series of foreign checkpoints is laid out on disk.
type SeriesLayout =
    /// Checkpoint files whose names carry an epoch, a step or a bare number (`epoch_3.pth`, `step-500.pt`).
    | Files = 0
    /// PyTorch Lightning's ModelCheckpoint files (`epoch=3-step=1410.ckpt`).
    | Lightning = 1
    /// Hugging Face Trainer `checkpoint-N/` directories.
    | HuggingFace = 2

/// One checkpoint of a series.
type SeriesEntry =
    { /// Time coordinate: the global optimiser step where the layout gives it, else the epoch.
      Time: int
      /// The epoch, where the layout gives it (fractional for Hugging Face).
      Epoch: float option
      /// The global optimiser step, where the layout gives it.
      Step: int64 option
      /// The checkpoint to read: a file (.pt/.pth/.bin/.ckpt/.safetensors), an index json, or the
      /// weights file inside a Hugging Face checkpoint-N directory.
      Checkpoint: string
      /// What the user's name for it was (file or checkpoint-N directory), for messages.
      Source: string }

/// What `CheckpointSeries.discover` found: the checkpoints in time order and how they were placed.
type CheckpointSeriesPlan =
    { Layout: SeriesLayout
      /// Step or Epoch: what `SeriesEntry.Time` counts.
      TimeUnit: TimeUnit
      /// Sorted by Time, unique.
      Entries: SeriesEntry[]
      /// The constant spacing the layout declares (HF trainer_state's save_steps, or a name pattern
      /// with a constant step), for gap detection; None when uneven by design.
      DeclaredInterval: int option
      Metrics: SeriesMetrics option
      /// Human-readable notes for the import report (what was found, which time unit and why).
      Notes: string[] }

/// Finding the checkpoints of a training run (plain files, Lightning, Hugging Face) and ordering
/// them in time, without reading a weight.
module CheckpointSeries =
    let private fail fmt = Errors.artifact fmt
    let private failAt path fmt = Errors.artifactAt path fmt
    let private failNaming path fmt = Errors.artifactNaming path fmt

    /// Extensions of a checkpoint file.
    let private extensions = [| ".pt"; ".pth"; ".bin"; ".ckpt"; ".safetensors" |]

    /// True when `path` names a checkpoint file by its extension (a sharded index by `.index.json`).
    [<CompiledName("IsCheckpointFile")>]
    let isCheckpointFile (path: string) =
        extensions |> Array.contains (Path.GetExtension(path).ToLowerInvariant())
        || path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)

    let private options = RegexOptions.IgnoreCase ||| RegexOptions.CultureInvariant
    let private epochPattern = Regex(@"(?:^|[^a-z])epoch[=_-]?(\d+)", options)
    let private stepPattern = Regex(@"(?:^|[^a-z])(?:global_?)?step[=_-]?(\d+)", options)
    let private trailingNumber = Regex(@"(\d+)$", options)
    let private anyNumber = Regex(@"\d+", options)
    let private hfDirectory = Regex(@"^checkpoint-(\d+)$", options)
    /// Lightning's `save_last` copy (`last.ckpt`, `last-v1.ckpt`) and a best-model copy (`best.pt`):
    /// duplicates of checkpoints of the series.
    let private lastCopy = Regex(@"^(last|best)(-v\d+)?$", options)
    /// What the Hugging Face Trainer writes beside its checkpoint-N directories: the final model,
    /// its shards, its arguments — none of them a point of the series.
    let private trainerOutputFile = Regex(@"^(model|pytorch_model|adapter_model|training_args|optimizer|scheduler|rng_state)([-.].*)?$", options)

    /// A name's numbers: the epoch and step it spells, and its single trailing (or only) integer.
    type private NameNumbers = { Epoch: int64 option; Step: int64 option; Bare: int64 option }

    let private parseNumber (source: string) (digits: string) =
        match Int64.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture) with
        | true, n -> n
        | _ -> failAt source "the number %s in its name is too large" digits

    let private nameNumbers (source: string) (stem: string) =
        let group (m: Match) = if m.Success then Some(parseNumber source m.Groups[1].Value) else None
        let bare =
            match trailingNumber.Match stem with
            | m when m.Success -> Some(parseNumber source m.Groups[1].Value)
            | _ ->
                match anyNumber.Matches stem with
                | ms when ms.Count = 1 -> Some(parseNumber source ms[0].Value)
                | _ -> None
        { Epoch = group (epochPattern.Match stem); Step = group (stepPattern.Match stem); Bare = bare }

    let private toTime (source: string) (value: int64) =
        if value > int64 Int32.MaxValue then failAt source "time %d is beyond the range Thermo counts" value
        int value

    /// The constant spacing the names show, when they show one: the smallest gap, when every gap is
    /// a multiple of it, most gaps are it, and the series comes back to it after every larger gap —
    /// so a missing checkpoint reads as a gap, while log-spaced checkpoints, or saves every 500 steps
    /// and then every 1000, read as uneven by design.
    let private inferInterval (times: int[]) =
        if times.Length < 2 then None
        else
            let gaps = Array.pairwise times |> Array.map (fun (a, b) -> b - a)
            let smallest = Array.min gaps
            let atSmallest = gaps |> Array.filter ((=) smallest) |> Array.length
            let lastAtSmallest = gaps |> Array.findIndexBack ((=) smallest)
            let regimeChange = gaps |> Array.indexed |> Array.exists (fun (i, g) -> g > smallest && i > lastAtSmallest)
            if smallest > 0 && gaps |> Array.forall (fun g -> g % smallest = 0) && 2 * atSmallest > gaps.Length && not regimeChange then Some smallest
            else None

    // ---- metrics -------------------------------------------------------------------------------

    /// One logged row: time, loss, eval loss, learning rate, eval accuracy (NaN where absent).
    type private MetricRow = int * float * float * float * float

    /// One row per distinct time, each metric the mean of the values logged at that time (a loss and
    /// an eval row at the same step merge; per-step rows of an epoch-based series average over the epoch).
    let private metricsOf (rows: MetricRow seq) : SeriesMetrics option =
        let meanOf (values: float seq) =
            let present = values |> Seq.filter (Double.IsNaN >> not) |> Seq.toArray
            if present.Length = 0 then nan else Array.average present
        let grouped =
            rows
            |> Seq.filter (fun (_, a, b, c, d) -> not (Double.IsNaN a && Double.IsNaN b && Double.IsNaN c && Double.IsNaN d))
            |> Seq.groupBy (fun (t, _, _, _, _) -> t)
            |> Seq.sortBy fst
            |> Seq.map (fun (t, rs) ->
                t,
                meanOf (rs |> Seq.map (fun (_, a, _, _, _) -> a)),
                meanOf (rs |> Seq.map (fun (_, _, b, _, _) -> b)),
                meanOf (rs |> Seq.map (fun (_, _, _, c, _) -> c)),
                meanOf (rs |> Seq.map (fun (_, _, _, _, d) -> d)))
            |> Seq.toArray
        if grouped.Length = 0 then None
        else
            Some
                { Time = grouped |> Array.map (fun (t, _, _, _, _) -> t)
                  Loss = grouped |> Array.map (fun (_, a, _, _, _) -> a)
                  EvalLoss = grouped |> Array.map (fun (_, _, b, _, _) -> b)
                  LearningRate = grouped |> Array.map (fun (_, _, _, c, _) -> c)
                  EvalAccuracy = grouped |> Array.map (fun (_, _, _, _, d) -> d) }

    /// Splits one CSV line, honouring double quotes.
    let private csvCells (line: string) =
        let cells = ResizeArray<string>()
        let cell = Text.StringBuilder()
        let mutable quoted = false
        let mutable i = 0
        while i < line.Length do
            let c = line[i]
            if quoted then
                if c = '"' && i + 1 < line.Length && line[i + 1] = '"' then
                    cell.Append '"' |> ignore
                    i <- i + 1
                elif c = '"' then quoted <- false
                else cell.Append c |> ignore
            elif c = '"' then quoted <- true
            elif c = ',' then
                cells.Add(cell.ToString())
                cell.Clear() |> ignore
            else cell.Append c |> ignore
            i <- i + 1
        cells.Add(cell.ToString())
        cells.ToArray()

    let private parseCell (cell: string) =
        match Double.TryParse(cell.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, v -> v
        | _ -> nan

    /// Reads a CSVLogger-style metrics.csv (sparse rows; time from the `step` or `epoch` column, as
    /// the series counts), with a note saying what was used, or why nothing was.
    let private readMetricsCsv (path: string) (unit: TimeUnit) : SeriesMetrics option * string =
        try
            let lines = File.ReadAllLines path |> Array.filter (String.IsNullOrWhiteSpace >> not)
            if lines.Length = 0 then None, sprintf "Metrics: %s is empty; no metrics." path
            else
                let header = csvCells lines[0] |> Array.map (fun h -> h.Trim())
                let column (names: string list) =
                    names |> List.tryPick (fun n -> header |> Array.tryFindIndex (fun h -> String.Equals(h, n, StringComparison.OrdinalIgnoreCase)))
                let timeName = TimeUnits.name unit
                match column [ timeName ] with
                | None -> None, sprintf "Metrics: %s has no '%s' column, the series' time unit; no metrics." path timeName
                | Some timeColumn ->
                    let loss = column [ "train_loss"; "loss"; "train_loss_step"; "train_loss_epoch" ]
                    let evalLoss = column [ "val_loss"; "eval_loss"; "val_loss_epoch" ]
                    let lr =
                        match column [ "lr"; "learning_rate" ] with
                        | Some i -> Some i
                        | None -> header |> Array.tryFindIndex (fun h -> h.StartsWith("lr-", StringComparison.OrdinalIgnoreCase))
                    let accuracy = column [ "val_acc"; "val_accuracy"; "eval_accuracy"; "val_acc_epoch" ]
                    let used = [ loss; evalLoss; lr; accuracy ] |> List.choose id |> List.map (fun i -> header[i])
                    if used.IsEmpty then None, sprintf "Metrics: %s has no loss, learning-rate or accuracy column; no metrics." path
                    else
                        let rows =
                            lines
                            |> Seq.skip 1
                            |> Seq.choose (fun line ->
                                let cells = csvCells line
                                let at (c: int option) = match c with Some i when i < cells.Length -> parseCell cells[i] | _ -> nan
                                let time = at (Some timeColumn)
                                if Double.IsNaN time || time < 0.0 || time > float Int32.MaxValue then None
                                else Some(int (floor time), at loss, at evalLoss, at lr, at accuracy))
                        let metrics = metricsOf rows
                        let rowCount = metrics |> Option.map (fun m -> m.Time.Length) |> Option.defaultValue 0
                        metrics, sprintf "Metrics: %s (columns %s), %d rows by %s." path (String.Join(", ", used)) rowCount timeName
        with :? IOException | :? UnauthorizedAccessException as e -> None, sprintf "Metrics: %s could not be read (%s); no metrics." path e.Message

    // ---- Hugging Face --------------------------------------------------------------------------

    type private TrainerState =
        { GlobalStep: int64 option
          Epoch: float option
          SaveSteps: int option
          LogHistory: MetricRow[] }

    /// Python's json writes NaN and ±Infinity bare, which is not JSON; read them as null (absent).
    let private pythonNonFinite = Regex(@"(?<=[:\[,]\s*)-?(NaN|Infinity)(?=\s*[,\]}])", RegexOptions.CultureInvariant)

    let private readTrainerState (path: string) =
        let text =
            try File.ReadAllText path
            with :? IOException | :? UnauthorizedAccessException as e -> failAt path "cannot be read (%s)" e.Message
        let document =
            try JsonDocument.Parse text
            with :? JsonException ->
                try JsonDocument.Parse(pythonNonFinite.Replace(text, "null"))
                with :? JsonException as e -> failAt path "not JSON (%s)" e.Message
        use document = document
        let root = document.RootElement
        if root.ValueKind <> JsonValueKind.Object then failAt path "not a JSON object"
        let number (element: JsonElement) (name: string) =
            match element.TryGetProperty name with
            | true, v when v.ValueKind = JsonValueKind.Number -> (match v.TryGetDouble() with | true, d when Double.IsFinite d -> Some d | _ -> None)
            | _ -> None
        let integer (name: string) =
            number root name |> Option.filter (fun v -> v >= 0.0 && v < 9e15 && v = floor v) |> Option.map int64
        let history =
            match root.TryGetProperty "log_history" with
            | true, h when h.ValueKind = JsonValueKind.Array ->
                [| for row in h.EnumerateArray() do
                       if row.ValueKind = JsonValueKind.Object then
                           match number row "step" with
                           | Some step when step >= 0.0 && step <= float Int32.MaxValue ->
                               let value name = number row name |> Option.defaultValue nan
                               yield int step, value "loss", value "eval_loss", value "learning_rate", value "eval_accuracy"
                           | _ -> () |]
            | _ -> [||]
        { GlobalStep = integer "global_step"
          Epoch = number root "epoch"
          SaveSteps = integer "save_steps" |> Option.filter (fun s -> s > 0L && s <= int64 Int32.MaxValue) |> Option.map int
          LogHistory = history }

    /// The weights of a checkpoint-N directory, in the Trainer's order of preference.
    let private weightNames = [| "model.safetensors"; "model.safetensors.index.json"; "pytorch_model.bin"; "pytorch_model.bin.index.json" |]

    let private isHfCheckpoint (directory: string) =
        hfDirectory.IsMatch(Path.GetFileName(Path.TrimEndingDirectorySeparator directory))
        || File.Exists(Path.Combine(directory, "trainer_state.json"))

    /// Entries of checkpoint-N directories, with the trainer state of each.
    let private huggingFace (directories: string[]) (notes: ResizeArray<string>) =
        let placed =
            directories
            |> Array.map (fun directory ->
                let name = Path.GetFileName(Path.TrimEndingDirectorySeparator directory)
                let statePath = Path.Combine(directory, "trainer_state.json")
                let state = if File.Exists statePath then Some(readTrainerState statePath) else None
                let fromName =
                    match hfDirectory.Match name with
                    | m when m.Success -> Some(parseNumber directory m.Groups[1].Value)
                    | _ -> None
                let step =
                    match state |> Option.bind (fun s -> s.GlobalStep), fromName with
                    | Some step, _ -> step
                    | None, Some n ->
                        notes.Add(sprintf "%s has no global_step in a trainer_state.json: its step is read from its name." directory)
                        n
                    | None, None -> failAt directory "neither a checkpoint-N name nor a trainer_state.json with global_step"
                let weights =
                    match weightNames |> Array.map (fun w -> Path.Combine(directory, w)) |> Array.tryFind File.Exists with
                    | Some w -> w
                    | None -> failNaming directory "%s holds no model weights (%s)" directory (String.Join(", ", weightNames))
                { Time = toTime directory step
                  Epoch = state |> Option.bind (fun s -> s.Epoch)
                  Step = Some step
                  Checkpoint = weights
                  Source = directory },
                state)
        placed

    // ---- assembling --------------------------------------------------------------------------------

    /// Sorts entries by time, failing on two at the same time.
    let private ordered (unit: TimeUnit) (entries: SeriesEntry[]) =
        let sorted = entries |> Array.sortBy (fun e -> e.Time)
        for a, b in Array.pairwise sorted do
            if a.Time = b.Time then
                fail "%s and %s are both at %s: one series cannot hold two checkpoints of the same time" a.Source b.Source (TimeUnits.format unit (int64 a.Time))
        sorted

    /// The metrics.csv of a file series: beside the files, in `lightning_logs/version_*/` under the
    /// directory (the newest version), or beside a Lightning `checkpoints/` folder.
    let private metricsCsvFor (directory: string) =
        let beside = Path.Combine(directory, "metrics.csv")
        let versions () =
            let logs = Path.Combine(directory, "lightning_logs")
            if Directory.Exists logs then
                Directory.GetDirectories(logs, "version_*")
                |> Array.choose (fun d ->
                    match Int32.TryParse(Path.GetFileName(d).Substring("version_".Length)) with
                    | true, v when File.Exists(Path.Combine(d, "metrics.csv")) -> Some(v, Path.Combine(d, "metrics.csv"))
                    | _ -> None)
                |> Array.sortBy fst
                |> Array.tryLast
                |> Option.map snd
            else None
        let parent () =
            let full = Path.GetFullPath directory |> Path.TrimEndingDirectorySeparator
            if String.Equals(Path.GetFileName full, "checkpoints", StringComparison.OrdinalIgnoreCase) then
                let p = Path.Combine(Path.GetDirectoryName full, "metrics.csv")
                if File.Exists p then Some p else None
            else None
        if File.Exists beside then Some beside
        else versions () |> Option.orElse (parent ())

    /// Places checkpoint files on one time axis from their names.
    let private fileSeries (files: string[]) (metricsDirectory: string) (notes: ResizeArray<string>) =
        let kept =
            files
            |> Array.filter (fun f ->
                if lastCopy.IsMatch(Path.GetFileNameWithoutExtension f) then
                    notes.Add(sprintf "Ignored %s: a copy of the latest (or best) checkpoint, which duplicates one of the series." f)
                    false
                else true)
        if kept.Length = 0 then failNaming metricsDirectory "%s holds only a last-checkpoint copy (%s); no series to order" metricsDirectory (String.Join(", ", files))
        let parsed =
            kept
            |> Array.map (fun f ->
                let numbers = nameNumbers f (Path.GetFileNameWithoutExtension f)
                if numbers.Epoch.IsNone && numbers.Step.IsNone && numbers.Bare.IsNone then
                    failAt f "its name carries no number to order it by (expected e.g. epoch=3.pt, step_500.pt, ckpt-0003.pt)"
                f, numbers)
        let all predicate = parsed |> Array.forall (snd >> predicate)
        let unit, timeOf, why =
            if all (fun n -> n.Step.IsSome) then
                TimeUnit.Step, (fun n -> n.Step.Value), "every name carries the optimiser step"
            elif all (fun n -> n.Epoch.IsSome || (n.Step.IsNone && n.Bare.IsSome)) then
                let anyBare = parsed |> Array.exists (fun (_, n) -> n.Epoch.IsNone)
                TimeUnit.Epoch, (fun n -> match n.Epoch with Some e -> e | None -> n.Bare.Value),
                (if anyBare then "names carry an epoch or a bare number, read as the epoch (name files step_N to count steps)"
                 else "the names carry the epoch, not every one the step")
            elif all (fun n -> n.Step.IsSome || (n.Epoch.IsNone && n.Bare.IsSome)) then
                TimeUnit.Step, (fun n -> match n.Step with Some s -> s | None -> n.Bare.Value), "names carry a step or a bare number, read as the step"
            else
                let stepOnly = parsed |> Array.find (fun (_, n) -> n.Step.IsSome && n.Epoch.IsNone) |> fst
                let epochOnly = parsed |> Array.find (fun (_, n) -> n.Step.IsNone && n.Epoch.IsSome) |> fst
                fail "%s names a step and %s an epoch: the checkpoints cannot be placed on one time axis" stepOnly epochOnly
        let entries =
            parsed
            |> Array.map (fun (f, n) ->
                { Time = toTime f (timeOf n)
                  Epoch = (if unit = TimeUnit.Epoch then Some(float (timeOf n)) else n.Epoch |> Option.map float)
                  Step = (if unit = TimeUnit.Step then Some(timeOf n) else n.Step)
                  Checkpoint = f
                  Source = f })
            |> ordered unit
        let lightning =
            kept
            |> Array.exists (fun f ->
                let name = Path.GetFileName(f).ToLowerInvariant()
                name.EndsWith ".ckpt" || name.Contains "epoch=" || name.Contains "step=")
        let layout = if lightning then SeriesLayout.Lightning else SeriesLayout.Files
        notes.Add(
            sprintf "Found %d checkpoint files (%s names); time unit: %s (%s)."
                entries.Length (if lightning then "Lightning ModelCheckpoint" else "plain") (if unit = TimeUnit.Step then "optimiser step" else "epoch") why)
        let interval = inferInterval (entries |> Array.map (fun e -> e.Time))
        match interval with
        | Some i -> notes.Add(sprintf "Interval: %d, the spacing of most checkpoints." i)
        | None when entries.Length > 1 -> notes.Add "Interval: none, the checkpoints are unevenly spaced."
        | None -> ()
        let metrics =
            match metricsCsvFor metricsDirectory with
            | Some csv ->
                let m, note = readMetricsCsv csv unit
                notes.Add note
                m
            | None -> None
        { Layout = layout
          TimeUnit = unit
          Entries = entries
          DeclaredInterval = interval
          Metrics = metrics
          Notes = notes.ToArray() }

    /// Places Hugging Face checkpoint-N directories by their trainer state's global step.
    let private hfSeries (directories: string[]) (notes: ResizeArray<string>) =
        let placed = huggingFace directories notes
        let entries = placed |> Array.map fst |> ordered TimeUnit.Step
        let last = entries[entries.Length - 1]
        let lastState = placed |> Array.find (fun (e, _) -> e.Source = last.Source) |> snd
        notes.Add(sprintf "Found %d Hugging Face checkpoint directories; time unit: optimiser step (trainer_state.json's global_step)." entries.Length)
        let times = entries |> Array.map (fun e -> e.Time)
        let declared = placed |> Array.choose (fun (_, s) -> s |> Option.bind (fun s -> s.SaveSteps)) |> Array.tryLast
        let interval =
            match declared with
            | Some s when Array.pairwise times |> Array.forall (fun (a, b) -> (b - a) % s = 0) ->
                notes.Add(sprintf "Interval: %d steps (trainer_state.json's save_steps)." s)
                Some s
            | declared ->
                let inferred = inferInterval times
                let said = declared |> Option.map (sprintf "save_steps %d does not divide the checkpoints' spacing; ") |> Option.defaultValue ""
                match inferred with
                | Some i -> notes.Add(sprintf "Interval: %s%d, the spacing of most checkpoints." said i)
                | None -> notes.Add(sprintf "Interval: %snone, the checkpoints are unevenly spaced." said)
                inferred
        let metrics =
            match lastState with
            | Some state ->
                let m = metricsOf state.LogHistory
                match m with
                | Some m -> notes.Add(sprintf "Metrics: log_history of %s, %d rows by step." (Path.Combine(last.Source, "trainer_state.json")) m.Time.Length)
                | None -> notes.Add(sprintf "Metrics: %s logs no loss, learning rate or accuracy." (Path.Combine(last.Source, "trainer_state.json")))
                m
            | None ->
                notes.Add(sprintf "Metrics: none (%s has no trainer_state.json)." last.Source)
                None
        { Layout = SeriesLayout.HuggingFace
          TimeUnit = TimeUnit.Step
          Entries = entries
          DeclaredInterval = interval
          Metrics = metrics
          Notes = notes.ToArray() }

    /// Finds the checkpoints of a run and orders them in time, reading names and trainer states but no
    /// weight. `inputs` is one directory (its checkpoint files, or its Hugging Face `checkpoint-N/`
    /// subdirectories; not searched deeper), or checkpoint files and checkpoint-N directories given
    /// one by one (a shell glob). Raises `ArtifactException` naming the path for an input that does
    /// not exist, a directory without checkpoints, a checkpoint file whose name carries no number,
    /// two checkpoints at the same time, a trainer_state.json that is not JSON, and a checkpoint-N
    /// directory without weights. Nothing with a checkpoint extension is skipped without a note.
    [<CompiledName("Discover")>]
    let discover (inputs: string[]) : CheckpointSeriesPlan =
        if isNull inputs || inputs.Length = 0 then fail "no checkpoints given"
        for input in inputs do
            if not (File.Exists input || Directory.Exists input) then failNaming input "%s does not exist" input
        let notes = ResizeArray<string>()
        let single = if inputs.Length = 1 && Directory.Exists inputs[0] then Some inputs[0] else None
        let candidates, explicitGiven =
            match single with
            | Some directory when not (isHfCheckpoint directory && Directory.GetDirectories directory |> Array.forall (fun d -> not (hfDirectory.IsMatch(Path.GetFileName d)))) ->
                Array.append (Directory.GetFiles directory |> Array.sort) (Directory.GetDirectories directory |> Array.sort), false
            | _ -> inputs, true
        let hfDirs = candidates |> Array.filter (fun c -> Directory.Exists c && (if explicitGiven then isHfCheckpoint c else hfDirectory.IsMatch(Path.GetFileName c)))
        let files = candidates |> Array.filter (fun c -> File.Exists c && isCheckpointFile c)
        if explicitGiven then
            for c in candidates do
                if not (Array.contains c hfDirs || Array.contains c files) then
                    notes.Add(sprintf "Ignored %s: neither a checkpoint file (%s) nor a checkpoint-N directory." c (String.Join(", ", extensions)))
        let where = match single with Some d when not explicitGiven -> d | _ -> String.Join(", ", inputs)
        // The one input that `where` names, or "" when it lists several (no one path is at fault).
        let wherePath = if inputs.Length = 1 then inputs[0] else ""
        if hfDirs.Length > 0 then
            let stray = files |> Array.filter (fun f -> not (trainerOutputFile.IsMatch(Path.GetFileNameWithoutExtension f)))
            if stray.Length > 0 then
                failNaming wherePath "%s mixes checkpoint-N directories and checkpoint files (%s); give one layout" where (String.Join(", ", stray |> Array.truncate 3))
            for f in files do
                notes.Add(sprintf "Ignored %s: the Trainer's final output beside its checkpoint-N directories, not a point of the series." f)
            hfSeries hfDirs notes
        elif files.Length > 0 then
            let metricsDirectory =
                match single with
                | Some d when not explicitGiven -> d
                | _ -> Path.GetDirectoryName(Path.GetFullPath files[0])
            fileSeries files metricsDirectory notes
        elif explicitGiven then
            failNaming wherePath "none of %s is a checkpoint file (%s) or a checkpoint-N directory" where (String.Join(", ", extensions))
        else
            failNaming wherePath "%s holds no checkpoint files (%s) or checkpoint-N directories" where (String.Join(", ", extensions))
