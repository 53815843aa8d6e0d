namespace Thermo.Analysis

open System
open System.IO
open System.Threading.Tasks

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
      /// Include each unit's bias in its group (SPEC: weights only by default).
      IncludeBias: bool
      Physics: Physics
      /// Layers whose unit groups get MSD curves and fits (None: the first analysed layer).
      MsdLayers: string[] option
      /// Lag range of the α and D fits (None: α over 1..n/2, D over 1..n/4, at least 2 lags).
      FitLags: (int * int) option }

    static member Default =
        { Window = Auto; Grouping = Grouping.Unit; Layers = None; IncludeBias = false; Physics = Physics.Default
          MsdLayers = None; FitLags = None }

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
      OscillationRank: int }

/// One group's diffusion curves and fits.
type GroupDiffusionResult =
    { Key: GroupKey
      Curves: GroupDiffusion
      /// α from MSD ∝ τ^α.
      Alpha: FitResult
      /// D from the drift-corrected MSD ≈ 2·D·τ·Δt.
      Diffusion: FitResult }

/// Everything `analyze` computes for one run.
type AnalysisResult =
    { Run: string
      Window: EquilibriumWindow
      Physics: Physics
      Grouping: Grouping
      Groups: GroupResult[]
      /// Per layer: T of the whole layer.
      Layers: GroupResult[]
      /// T_G(e) for e = From+1..To, for every layer and (with unit grouping) every unit.
      Instantaneous: (GroupKey * float[])[]
      Diffusion: GroupDiffusionResult[]
      /// Per layer: Spearman correlation of the units' temperature and L1-norm rankings.
      TemperatureL1Spearman: (string * float)[]
      /// Per layer: decay of the gradient-noise signal over the window (empty without gradnoise.parquet).
      NoiseDecay: NoiseDecay[]
      /// Common decay rate of all layers' gradient noise and the pooled fit's R².
      CommonNoiseDecay: (float * float) option }

/// The streaming engine: one pass over the window's snapshots with per-weight float64 running sums,
/// so memory is O(parameters); only the MSD groups' trajectories are held. The next snapshot file is
/// read on another core while the current one is accumulated.
module Engine =
    let private fail fmt = Printf.kprintf (fun m -> raise (ArtifactException m)) fmt

    /// A selected tensor: where its values sit in a snapshot's flat, directory-ordered values.
    type private Slot = { Layer: string; Tensor: string; Units: int; UnitSize: int; Start: int }

    /// The per-epoch snapshot files of the window, checking none is missing or duplicated.
    let windowFiles (run: string) (files: (int * string)[]) (window: EquilibriumWindow) =
        let inWindow = files |> Array.filter (fun (e, _) -> e >= window.From && e <= window.To)
        let duplicated = inWindow |> Array.countBy fst |> Array.filter (fun (_, c) -> c > 1) |> Array.map fst
        if duplicated.Length > 0 then
            fail "%s: epochs %s have more than one snapshot file (both .parquet and .arrow?)" run (String.Join(", ", duplicated))
        let present = inWindow |> Array.map fst |> Set.ofArray
        let missing = [| window.From .. window.To |] |> Array.filter (fun e -> not (present.Contains e))
        if missing.Length > 0 then
            let shown = missing |> Array.truncate 20 |> Array.map string
            fail "%s: window %d:%d lacks the snapshots of epochs %s%s" run window.From window.To (String.Join(", ", shown)) (if missing.Length > 20 then ", …" else "")
        inWindow |> Array.map snd

    /// The named column of a table read from `path`, or a message naming the file and the column.
    let private column (path: string) (columns: Column list) (name: string) =
        match columns |> List.tryFind (fun c -> c.Name = name) with
        | Some c -> c
        | None -> fail "%s: no column '%s'" path name

    let private readMetrics (run: string) =
        let path = Path.Combine(run, "metrics.parquet")
        if not (File.Exists path) then None
        else
            let get = column path (Tables.read path "metrics")
            let ints name = match get name with Int32Column(_, v) -> v | _ -> fail "%s: column %s is not int32" path name
            let floats name = match get name with Float64Column(_, v) -> v | _ -> fail "%s: column %s is not float64" path name
            Some(ints "epoch", floats "test_loss", floats "test_accuracy")

    let private readGradientNoise (run: string) =
        let path = Path.Combine(run, "gradnoise.parquet")
        if not (File.Exists path) then [||]
        else
            let get = column path (Tables.read path "gradnoise")
            match get "epoch", get "layer", get "mean" with
            | Int32Column(_, e), StringColumn(_, l), Float64Column(_, m) -> Array.init e.Length (fun i -> e[i], l[i], m[i])
            | _ -> fail "%s: columns epoch, layer, mean are not int32, string, float64" path

    /// Offset of each tensor in a snapshot's flat, directory-ordered values.
    let private fileOffsets (snapshot: Snapshot) =
        snapshot.Tensors |> Array.scan (fun at t -> at + t.Values.Length) 0

    /// The selected tensors, positioned by their offsets in the file's flat value order (so the engine
    /// indexes the buffer `SnapshotReader.readFlatInto` fills, without copying), and the layers.
    let private slotsOf (path: string) (snapshot: Snapshot) (options: AnalysisOptions) =
        let weightLayers = snapshot.Tensors |> Array.filter (fun t -> t.Tensor = "weight") |> Array.map (fun t -> t.Layer) |> Array.distinct
        let layers =
            match options.Layers with
            | None -> weightLayers
            | Some asked ->
                for l in asked do
                    if not (Array.contains l weightLayers) then
                        fail "%s: unknown layer '%s' (layers with weights: %s)" path l (String.Join(", ", weightLayers))
                asked
        let offsets = fileOffsets snapshot
        [| for layer in layers do
               for tensorName in (if options.IncludeBias then [ "weight"; "bias" ] else [ "weight" ]) do
                   match snapshot.Tensors |> Array.tryFindIndex (fun t -> t.Layer = layer && t.Tensor = tensorName) with
                   | Some i ->
                       let t = snapshot.Tensors[i]
                       yield { Layer = layer; Tensor = tensorName; Units = t.Units; UnitSize = t.UnitSize; Start = offsets[i] }
                   | None -> () |], layers

    /// Fails naming layer, tensor and epoch when a flat snapshot holds NaN or ±∞.
    let private checkFiniteFlat (path: string) (epoch: int) (directory: (string * string * int[])[]) (values: float32[]) =
        let bad = Array.FindIndex(values, fun v -> Single.IsNaN v || Single.IsInfinity v)
        if bad >= 0 then
            let starts = directory |> Array.scan (fun at (_, _, shape) -> at + Array.fold (*) 1 shape) 0
            let i = (starts |> Array.findIndexBack (fun start -> start <= bad))
            let layer, tensor, _ = directory[min i (directory.Length - 1)]
            fail "%s: %s.%s holds %g at flat index %d (epoch %d); the run diverged or the file is corrupt" path layer tensor values[bad] (bad - starts[i]) epoch

    /// A group's weights as ranges (start, length) of the gathered array: a unit is one range of its
    /// weight tensor (plus one bias element), a layer one range per tensor. Ranges, not index arrays,
    /// keep the engine's memory at a few bytes per weight.
    type private Group = { Key: GroupKey; Ranges: struct (int * int)[] }

    let private size (g: Group) = g.Ranges |> Array.sumBy (fun struct (_, l) -> l)
    let private indices (g: Group) = g.Ranges |> Array.collect (fun struct (s, l) -> Array.init l (fun i -> s + i))

    /// Unit groups (which partition the selected weights), layer groups, and the requested groups.
    let private buildGroups (slots: Slot[]) (layers: string[]) (grouping: Grouping) =
        let unitGroups =
            layers |> Array.collect (fun l ->
                let own = slots |> Array.filter (fun s -> s.Layer = l)
                let units = own |> Array.filter (fun s -> s.Tensor = "weight") |> Array.map (fun s -> s.Units) |> Array.max
                Array.init units (fun u ->
                    { Key = { Layer = l; Unit = u; Weight = -1 }
                      Ranges = own |> Array.filter (fun s -> u < s.Units) |> Array.map (fun s -> struct (s.Start + u * s.UnitSize, s.UnitSize)) }))
        let layerGroups =
            layers |> Array.map (fun l ->
                { Key = { Layer = l; Unit = -1; Weight = -1 }
                  Ranges = slots |> Array.filter (fun s -> s.Layer = l) |> Array.map (fun s -> struct (s.Start, s.Units * s.UnitSize)) })
        let groups =
            match grouping with
            | Grouping.Layer -> layerGroups
            | Grouping.Unit -> unitGroups
            | _ ->
                slots |> Array.collect (fun s ->
                    Array.init (s.Units * s.UnitSize) (fun i ->
                        { Key = { Layer = s.Layer; Unit = i / s.UnitSize; Weight = (if s.Tensor = "bias" then -2 else i % s.UnitSize) }
                          Ranges = [| struct (s.Start + i, 1) |] }))
        groups, layerGroups, unitGroups

    /// Equilibrium, drift and oscillation temperatures of a group from the per-weight sums of v², the
    /// first and the last snapshot of the window (SPEC "Kinematics"; the same arithmetic as
    /// `Kinematics.groupTemperature`, without materialising per-weight arrays).
    let private temperatureOf (physics: Physics) (n: int) (sumSquares: float[]) (first: float32[]) (last: float32[]) (g: Group) =
        let mutable meanSquare = 0.0
        let mutable drift = 0.0
        for struct (start, length) in g.Ranges do
            for k in start .. start + length - 1 do
                meanSquare <- meanSquare + sumSquares[k] / float n
                let v = (float last[k] - float first[k]) / (float n * physics.Dt)
                drift <- drift + v * v
        let count = size g
        let t = physics.Factor * meanSquare / float count
        let tDrift = physics.Factor * drift / float count
        { Temperature = t; Drift = tDrift; Oscillation = t - tDrift; Weights = count }

    /// A fit that cannot be made (e.g. an MSD that is zero at every lag) is reported as NaN, not an error.
    let private fitOrNaN (fit: unit -> FitResult) =
        try fit ()
        with :? ArgumentException -> { Slope = nan; Intercept = nan; RSquared = nan; RangeFrom = nan; RangeTo = nan; Points = 0 }

    let private ranksWithinLayer (keys: GroupKey[]) (scores: float[]) =
        let ranks = Array.zeroCreate keys.Length
        keys |> Array.mapi (fun i k -> k.Layer, i) |> Array.groupBy fst
        |> Array.iter (fun (_, members) ->
            let idx = members |> Array.map snd
            Ranking.descending (idx |> Array.map (fun i -> scores[i])) |> Array.iteri (fun position local -> ranks[idx[local]] <- position + 1))
        ranks

    /// Analyses one run directory: resolves the window, streams its snapshots once, and returns every
    /// table of `analyze`. Raises `ArtifactException` (one message naming run, file, layer or epoch)
    /// for any input it cannot use.
    let analyze (run: string) (options: AnalysisOptions) : AnalysisResult =
        let files = SnapshotReader.listEpochFiles run
        let epochs = files |> Array.map fst |> Array.distinct
        let window = Window.resolve run epochs (if options.Window = Auto then readMetrics run else None) options.Window
        let paths = windowFiles run files window
        let physics = options.Physics
        let dt = physics.Dt
        let first = SnapshotReader.readFile paths[0]
        let slots, layers = slotsOf paths[0] first options
        let directory = first.Tensors |> Array.map (fun t -> t.Layer, t.Tensor, t.Shape)
        // Indices below are positions in the file's flat value order.
        let total = (fileOffsets first)[first.Tensors.Length]
        let groups, layerGroups, unitGroups = buildGroups slots layers options.Grouping
        let msdLayers = options.MsdLayers |> Option.defaultValue [| layers[0] |]
        for l in msdLayers do
            if not (Array.contains l layers) then fail "%s: --msd-layers names '%s', which is not analysed (analysed: %s)" run l (String.Join(", ", layers))
        let msdGroups = unitGroups |> Array.filter (fun g -> Array.contains g.Key.Layer msdLayers) |> Array.map (fun g -> g.Key, indices g)
        let msdIndices = msdGroups |> Array.collect snd |> Array.distinct |> Array.sort
        let msdPosition = msdIndices |> Array.mapi (fun p k -> k, p) |> dict
        let n = window.Velocities
        let trajectories = Array.init msdIndices.Length (fun _ -> Array.zeroCreate<float> (n + 1))
        // Instantaneous T_G(e) of every unit (the units partition the selected weights) and, from those
        // sums, of every layer.
        let unitSums = Array.init unitGroups.Length (fun _ -> Array.zeroCreate<float> n)
        let sumSquares = Array.zeroCreate<float> total
        let x0 = Array.concat (first.Tensors |> Array.map (fun t -> t.Values))
        checkFiniteFlat paths[0] first.Epoch directory x0
        let record (e: int) (x: float32[]) =
            for p in 0 .. msdIndices.Length - 1 do trajectories[p].[e] <- float x[msdIndices[p]]
        record 0 x0
        // Three reusable flat buffers: the previous snapshot, the current one, and the next, read on
        // another core while the current one is accumulated. Nothing is allocated per file.
        let buffers = Array.init (min 3 (paths.Length - 1)) (fun _ -> Array.zeroCreate<float32> total)
        let read i =
            Task.Run(fun () ->
                let target = buffers[(i - 1) % buffers.Length]
                let epoch, _, fileDirectory = SnapshotReader.readFlatInto paths[i] target
                if fileDirectory <> directory then
                    fail "%s: its tensors differ from those of %s, the window's first snapshot" paths[i] paths[0]
                checkFiniteFlat paths[i] epoch directory target
                target)
        let mutable previous = x0
        let mutable pending = if paths.Length > 1 then read 1 else null
        for i in 1 .. paths.Length - 1 do
            let x = try pending.Result with :? AggregateException as e -> raise e.InnerException
            if i + 1 < paths.Length then pending <- read (i + 1)
            let prev = previous
            Parallel.For(0, unitGroups.Length, fun u ->
                let mutable groupSum = 0.0
                for struct (start, length) in unitGroups[u].Ranges do
                    for k in start .. start + length - 1 do
                        let v = (float x[k] - float prev[k]) / dt
                        let v2 = v * v
                        sumSquares[k] <- sumSquares[k] + v2
                        groupSum <- groupSum + v2
                unitSums[u].[i - 1] <- groupSum) |> ignore
            record i x
            previous <- x
        let last = previous
        let unitInstantaneous = unitGroups |> Array.mapi (fun u g -> g.Key, unitSums[u] |> Array.map (fun s -> physics.Factor * s / float (size g)))
        let layerInstantaneous =
            layerGroups |> Array.map (fun lg ->
                let members = unitGroups |> Array.mapi (fun u g -> u, g) |> Array.filter (fun (_, g) -> g.Key.Layer = lg.Key.Layer)
                let count = float (size lg)
                lg.Key, Array.init n (fun e -> physics.Factor * (members |> Array.sumBy (fun (u, _) -> unitSums[u].[e])) / count))
        let instantaneousSeries = if options.Grouping = Grouping.Unit then Array.append layerInstantaneous unitInstantaneous else layerInstantaneous
        let l1 (g: Group) =
            let mutable sum = 0.0
            for struct (start, length) in g.Ranges do
                for k in start .. start + length - 1 do sum <- sum + abs (float last[k])
            sum
        let temperatureOf = temperatureOf physics n sumSquares x0 last
        // Units are needed for the Spearman correlation whatever the grouping; compute them once.
        let unitTemperatures = unitGroups |> Array.map temperatureOf
        let unitL1 = unitGroups |> Array.map l1
        let temperatures = if options.Grouping = Grouping.Unit then unitTemperatures else groups |> Array.map temperatureOf
        let groupL1 = if options.Grouping = Grouping.Unit then unitL1 else groups |> Array.map l1
        let keys = groups |> Array.map (fun g -> g.Key)
        let ranks = ranksWithinLayer keys (temperatures |> Array.map (fun t -> t.Temperature))
        let oscillationRanks = ranksWithinLayer keys (temperatures |> Array.map (fun t -> t.Oscillation))
        let results =
            Array.init groups.Length (fun i ->
                { Key = keys[i]; Temperature = temperatures[i]; L1Norm = groupL1[i]; Rank = ranks[i]; OscillationRank = oscillationRanks[i] })
        let layerResults =
            layerGroups |> Array.map (fun g -> { Key = g.Key; Temperature = temperatureOf g; L1Norm = l1 g; Rank = 1; OscillationRank = 1 })
        let spearman =
            layers |> Array.map (fun layer ->
                let units = unitGroups |> Array.mapi (fun u g -> u, g) |> Array.filter (fun (_, g) -> g.Key.Layer = layer) |> Array.map fst
                layer, Ranking.spearman (units |> Array.map (fun u -> unitTemperatures[u].Temperature)) (units |> Array.map (fun u -> unitL1[u])))
        let fitFrom, alphaTo, diffusionTo =
            match options.FitLags with
            | Some(a, b) ->
                if a < 1 || b > n || b - a < 1 then fail "%s: --fit-lags %d:%d must lie in 1..%d with at least two lags" run a b n
                a, b, b
            | None -> 1, max 2 (n / 2), max 2 (n / 4)
        let diffusion =
            if n < 2 then [||]
            else
                msdGroups |> Array.map (fun (key, idx) ->
                    let curves = GroupDiffusion.compute (idx |> Array.map (fun k -> trajectories[msdPosition[k]]))
                    { Key = key; Curves = curves
                      Alpha = fitOrNaN (fun () -> Fits.anomalousExponent curves.Lags curves.Msd fitFrom (min n alphaTo))
                      Diffusion = fitOrNaN (fun () -> Fits.diffusionConstant dt curves.Lags curves.DriftCorrectedMsd fitFrom (min n diffusionTo)) })
        let noise = readGradientNoise run
        { Run = run; Window = window; Physics = physics; Grouping = options.Grouping; Groups = results; Layers = layerResults
          Instantaneous = instantaneousSeries
          Diffusion = diffusion; TemperatureL1Spearman = spearman
          NoiseDecay = GradientNoise.layerDecay noise (max 1 window.From) window.To
          CommonNoiseDecay = GradientNoise.commonDecay noise (max 1 window.From) window.To }
