namespace Thermo.Analysis.Checkpoints

open System
open System.IO
open System.Text.Json
open Thermo.Analysis
open Thermo.Analysis.Run
open Thermo.Analysis.Engine

/// Which units of each layer to prune, as a file a PyTorch user applies with
/// `torch.nn.utils.prune.custom_from_mask` (docs/guide/pytorch.md): the hottest or coldest units of
/// an analysis, named by their state-dict tensors and the dimension their units lie along.
module PruneMask =
    let private failAt path fmt = Errors.artifactAt path fmt

    /// The file format's name, stored in the file.
    [<Literal>]
    let Format = "thermo-prune-mask/1"

    /// One tensor to mask: the units (slices along `Dim`) to zero.
    type MaskEntry = { Layer: string; Tensor: string; Dim: int; Units: int[] }

    /// The `count` hottest (`hot`) or coldest (`cold`) units of each layer, by equilibrium temperature,
    /// hottest (or coldest) first, from a temperature table's unit rows. `layers` None: every layer
    /// with unit rows. Raises `SettingException` ("Layers") for a layer without unit rows, ("Count")
    /// when `count` is not in 1..units − 1, ("Criterion") for another criterion.
    [<CompiledName("Select")>]
    let select (temperatureFile: string) (criterion: string) (count: int) (layers: string[] option) : (string * int[])[] =
        if criterion <> "hot" && criterion <> "cold" then
            raise (SettingException("Criterion", "", sprintf "unknown criterion '%s' (known: hot, cold)" criterion))
        let table = AnalysisTables.readTemperature temperatureFile
        let layer, grouping, unit, temperature = table.Layer, table.Grouping, table.Unit, table.Temperature
        let rows = Array.init layer.Length id |> Array.filter (fun i -> grouping[i] = "unit")
        let withUnits = rows |> Array.map (fun i -> layer[i]) |> Array.distinct
        let chosen =
            match layers with
            | None -> withUnits
            | Some asked ->
                for l in asked do
                    if not (Array.contains l withUnits) then
                        raise (SettingException(AnalysisSetting.Layers, temperatureFile, sprintf "layer '%s' has no per-unit temperatures (layers with them: %s)" l (String.Join(", ", withUnits))))
                asked
        chosen |> Array.map (fun l ->
            let own = rows |> Array.filter (fun i -> layer[i] = l)
            if count < 1 || count >= own.Length then
                raise (SettingException("Count", temperatureFile, sprintf "%d units of %s's %d: choose 1..%d" count l own.Length (own.Length - 1)))
            // Ties broken by unit index, so the choice is reproducible.
            let ordered = own |> Array.sortBy (fun i -> (if criterion = "hot" then -temperature[i] else temperature[i]), unit[i])
            l, ordered |> Array.take count |> Array.map (fun i -> unit[i]))

    /// (key, unit dimension) of each tensor of each layer, from the `tensors.json` an analysis of
    /// checkpoints writes beside its tables; None for a Thermo run's analysis, whose tensors are
    /// `LAYER.weight` and `LAYER.bias` with units along dim 0.
    let private tensorsOf (directory: string) =
        let file = RunLayout.tensors directory
        if not (File.Exists file) then None
        else
            try
                use document = JsonDocument.Parse(File.ReadAllText file)
                document.RootElement.GetProperty("analysed").EnumerateArray()
                |> Seq.map (fun t -> (t.GetProperty("layer").GetString(), t.GetProperty("tensor").GetString()), (t.GetProperty("key").GetString(), t.GetProperty("unitDim").GetInt32()))
                |> dict |> Some
            with :? JsonException | :? Collections.Generic.KeyNotFoundException | :? InvalidOperationException as e ->
                failAt file "not the tensors.json of an analysis (%s)" e.Message

    /// The mask entries for the selected units: each layer's weight (and, with `includeBias`, its
    /// bias: PyTorch's pruning zeroes a filter's bias with it only when asked), keys and dimensions
    /// from `tensors.json` where the analysis has one.
    [<CompiledName("Entries")>]
    let entries (temperatureFile: string) (selected: (string * int[])[]) (includeBias: bool) : MaskEntry[] =
        let directory = Path.GetDirectoryName(Path.GetFullPath temperatureFile)
        let known = tensorsOf directory
        [| for layer, units in selected do
               for tensor in (if includeBias then [ "weight"; "bias" ] else [ "weight" ]) do
                   match known with
                   | Some tensors ->
                       match tensors.TryGetValue((layer, tensor)) with
                       | true, (key, dim) -> yield { Layer = layer; Tensor = key; Dim = dim; Units = units }
                       | _ -> if tensor = "weight" then failAt (RunLayout.tensors directory) "lists no weight of layer %s (of %s)" layer temperatureFile
                   | None -> yield { Layer = layer; Tensor = layer + "." + tensor; Dim = 0; Units = units } |]

    /// The mask file's JSON text.
    [<CompiledName("ToJson")>]
    let toJson (criterion: string) (entries: MaskEntry[]) : string =
        use buffer = new MemoryStream()
        do
            use json = new Utf8JsonWriter(buffer, JsonWriterOptions(Indented = true))
            json.WriteStartObject()
            json.WriteString("format", Format)
            json.WriteString("criterion", criterion)
            json.WriteStartArray "layers"
            for e in entries do
                json.WriteStartObject()
                json.WriteString("layer", e.Layer)
                json.WriteString("tensor", e.Tensor)
                json.WriteNumber("dim", e.Dim)
                json.WriteStartArray "units"
                for u in e.Units do json.WriteNumberValue u
                json.WriteEndArray()
                json.WriteEndObject()
            json.WriteEndArray()
            json.WriteEndObject()
        Text.Encoding.UTF8.GetString(buffer.ToArray()) + "\n"
