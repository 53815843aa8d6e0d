module Thermo.Analysis.Tests.CheckpointTests

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Text.Json
open Expecto
open Thermo.Analysis
open Thermo.Analysis.Checkpoints
open Thermo.Analysis.Tests.Generators

/// The torch.save fixtures written by tests/fixtures/pytorch/torchzip_cases.py, each with its JSON.
let private fixtures = Path.Combine(repositoryRoot, "tests", "fixtures", "pytorch", "torchzip")

let private fixture name = Path.Combine(fixtures, name)

/// A fixture's expectation: PyTorch's own reading of the file.
type private Expected =
    { Outcome: string
      Contains: string[]
      /// (stored key, shape, dtype, float32 bits) of every floating tensor, in the state dict's order.
      Tensors: (string * int[] * string * uint32[])[]
      /// Stored keys of the tensors that are not floating.
      Others: string[]
      Epoch: int option
      GlobalStep: int64 option }

let private expected name =
    use json = JsonDocument.Parse(File.ReadAllText(fixture name + ".json"))
    let root = json.RootElement
    let property (p: string) = match root.TryGetProperty p with | true, v -> Some v | _ -> None
    let strings (p: string) = property p |> Option.map (fun v -> [| for s in v.EnumerateArray() -> s.GetString() |]) |> Option.defaultValue [||]
    { Outcome = root.GetProperty("outcome").GetString()
      Contains = strings "contains"
      Tensors =
        property "tensors"
        |> Option.map (fun v ->
            [| for t in v.EnumerateArray() ->
                t.GetProperty("key").GetString(),
                [| for d in t.GetProperty("shape").EnumerateArray() -> d.GetInt32() |],
                t.GetProperty("dtype").GetString(),
                [| for b in t.GetProperty("bits").EnumerateArray() -> b.GetUInt32() |] |])
        |> Option.defaultValue [||]
      Others = strings "others"
      Epoch = property "epoch" |> Option.map (fun v -> v.GetInt32())
      GlobalStep = property "global_step" |> Option.map (fun v -> v.GetInt64()) }

/// Every value `streamValues` gives for `tensors`, through chunks of `chunkSize`, one array per tensor.
let private streamed (chunkSize: int) (tensors: CheckpointTensor[]) =
    let all = ResizeArray<float32>()
    let mutable partials = 0
    TorchZip.streamValues tensors (fun () -> Array.zeroCreate chunkSize) (fun chunk count ->
        if count < chunk.Length then partials <- partials + 1
        all.AddRange(Seq.take count chunk))
    Expect.isLessThanOrEqual partials 1 "only the last chunk is handed back part-filled"
    let values = all.ToArray()
    let counts = tensors |> Array.map (fun t -> t.Shape |> Array.fold (*) 1)
    Expect.equal values.Length (Array.sum counts) "as many values as the shapes hold"
    let starts = Array.scan (+) 0 counts
    Array.init tensors.Length (fun i -> values[starts[i] .. starts[i + 1] - 1])

let private bitsOf (values: float32[]) = values |> Array.map BitConverter.SingleToUInt32Bits

/// Reads a fixture PyTorch reads, and checks every analysed tensor bit for bit against PyTorch's
/// float32 conversion, through small chunks (spanning tensors) and large ones.
let private readsLikePyTorch name =
    let e = expected name
    Expect.equal e.Outcome "ok" "the fixture is a readable one"
    let path = fixture name
    let contents = TorchZip.read CheckpointReadOptions.Default path
    Expect.equal contents.Format "torch-zip" "format"
    Expect.equal contents.Path path "path"
    Expect.equal contents.Epoch e.Epoch "epoch"
    Expect.equal contents.GlobalStep e.GlobalStep "global step"
    let byKey = e.Tensors |> Array.map (fun (key, shape, dtype, bits) -> key, (shape, dtype, bits)) |> dict
    for chunk in [ 7; 1; 1 <<< 16 ] do
        let values = streamed chunk contents.Tensors
        for tensor, v in Array.zip contents.Tensors values do
            let shape, dtype, bits = byKey[tensor.StoredKey]
            Expect.sequenceEqual tensor.Shape shape (sprintf "%s: shape" tensor.StoredKey)
            Expect.equal (ElementConversion.dtypeName tensor.DType) dtype (sprintf "%s: dtype" tensor.StoredKey)
            Expect.sequenceEqual (bitsOf v) bits (sprintf "%s: values, chunks of %d" tensor.StoredKey chunk)
    // The order of the state dict, analysed and dropped tensors together.
    let analysed = contents.Tensors |> Array.map (fun t -> t.StoredKey)
    let floating = e.Tensors |> Array.map (fun (key, _, _, _) -> key)
    Expect.sequenceEqual analysed (floating |> Array.filter (fun k -> Array.contains k analysed)) "analysed tensors in the state dict's order"
    for key in e.Others do
        Expect.isTrue (contents.Dropped |> Array.exists (fun d -> d.StoredKey = key)) (sprintf "%s (not floating) is dropped" key)
    contents

let private dropped (contents: CheckpointContents) =
    contents.Dropped |> Array.map (fun d -> d.StoredKey, d.Reason) |> List.ofArray

/// A copy of `name` in `dir`, changed by `change`.
let private mutated (dir: TempDirectory) (name: string) (change: byte[] -> byte[]) =
    let path = dir.File name
    File.WriteAllBytes(path, change (File.ReadAllBytes(fixture name)))
    path

let private expectRefused name =
    let e = expected name
    Expect.equal e.Outcome "error" "the fixture is a refused one"
    let path = fixture name
    try
        TorchZip.read CheckpointReadOptions.Default path |> ignore
        failtest "expected an ArtifactException"
    with ArtifactException message ->
        Expect.stringContains message path "the message names the file"
        for words in e.Contains do
            Expect.stringContains message words "the message names the fault"

/// Mutations of a valid file: truncations, flipped bytes, huge or random lengths in its zip
/// headers and in its pickle.
let private mutate (random: Random) (bytes: byte[]) =
    let copy = Array.copy bytes
    let put32 (at: int) (value: uint32) =
        if at >= 0 && at + 4 <= copy.Length then BitConverter.TryWriteBytes(Span(copy, at, 4), value) |> ignore
    let signatures (a, b) = [| for i in 0 .. bytes.Length - 4 do if bytes[i] = 0x50uy && bytes[i + 1] = 0x4Buy && bytes[i + 2] = a && bytes[i + 3] = b then i |]
    let central, local, ends = signatures (1uy, 2uy), signatures (3uy, 4uy), signatures (5uy, 6uy)
    let pick (xs: int[]) = if xs.Length = 0 then 0 else xs[random.Next xs.Length]
    let huge () = [| 0xFFFFFFFFu; 0x7FFFFFFFu; 0x80000000u; uint32 (random.Next()) ; 0xFFFFu |][random.Next 5]
    match random.Next 6 with
    | 0 -> sprintf "truncated", copy[.. random.Next copy.Length - 1]
    | 1 ->
        let n = 1 + random.Next 8
        for _ in 1 .. n do
            copy[random.Next copy.Length] <- byte (random.Next 256)
        sprintf "%d bytes changed" n, copy
    | 2 ->
        let at = pick central + [| 10; 20; 24; 28; 30; 42 |][random.Next 6]
        put32 at (huge ())
        sprintf "central directory field at %d" at, copy
    | 3 ->
        let at = pick local + [| 18; 22; 26; 28 |][random.Next 4]
        put32 at (huge ())
        sprintf "local header field at %d" at, copy
    | 4 ->
        let at = pick ends + [| 8; 10; 12; 16; 20 |][random.Next 5]
        put32 at (huge ())
        sprintf "end record field at %d" at, copy
    | _ ->
        // Inside the pickle, where the tensor shapes, strides and storage keys are.
        let start = pick local + 64
        let at = start + random.Next 400
        if at < copy.Length then
            if random.Next 2 = 0 then copy[at] <- byte (random.Next 256) else put32 at (huge ())
        sprintf "pickle byte %d" at, copy

[<Tests>]
let tests =
    testList "Checkpoint torch zip" [
        testList "names" [
            testCase "wrapper prefixes are stripped, repeatedly" <| fun () ->
                Expect.equal (CheckpointNames.stripWrappers "module._orig_mod.fc.weight") "fc.weight" "both"
                Expect.equal (CheckpointNames.stripWrappers "_orig_mod.module.fc.weight") "fc.weight" "either order"
                Expect.equal (CheckpointNames.stripWrappers "encoder.module.fc") "encoder.module.fc" "only as prefixes"

            testCase "layers and tensors" <| fun () ->
                Expect.equal (CheckpointNames.layerAndTensor "layer1.0.conv1.weight") ("layer1.0.conv1", "weight") "weight"
                Expect.equal (CheckpointNames.layerAndTensor "fc.bias") ("fc", "bias") "bias"
                Expect.equal (CheckpointNames.layerAndTensor "pos_embed") ("pos_embed", "weight") "neither: a layer of its own"
                Expect.equal (CheckpointNames.layerAndTensor "attn.in_proj_weight") ("attn.in_proj_weight", "weight") "not a .weight suffix"

            testCase "buffers" <| fun () ->
                for key in [ "bn1.running_mean"; "bn1.running_var"; "layer.0.bn.num_batches_tracked"; "rotary.inv_freq" ] do
                    Expect.isTrue (CheckpointNames.isKnownBuffer key) key
                for key in [ "bn1.weight"; "bn1.bias"; "running_meaning.weight" ] do
                    Expect.isFalse (CheckpointNames.isKnownBuffer key) key

            testCase "globs" <| fun () ->
                let yes = [ "*", ""; "*", "abc"; "fc.*", "fc.weight"; "layer?.conv", "layer1.conv"; "*.bn*.*", "a.bn1.weight"; "a*b*c", "aXbYbc" ]
                let no = [ "fc.*", "fc"; "layer?.conv", "layer12.conv"; "a*b", "abc"; "?", "" ]
                for p, t in yes do Expect.isTrue (CheckpointNames.globMatches p t) (sprintf "%s ~ %s" p t)
                for p, t in no do Expect.isFalse (CheckpointNames.globMatches p t) (sprintf "%s !~ %s" p t)
                let sw = Stopwatch.StartNew()
                Expect.isFalse (CheckpointNames.globMatches (String.replicate 30 "*a" + "b") (String.replicate 200 "a")) "no match"
                Expect.isLessThan sw.ElapsedMilliseconds 1000L "no exponential backtracking"
        ]

        testList "PyTorch's values, bit for bit" [
            for name in [ "float32.pt"; "float16.pt"; "bfloat16.pt"; "float64.pt"; "views.pt"; "lightning.ckpt"; "ddp.pt"; "batchnorm.pt" ] ->
                testCase name <| fun () -> readsLikePyTorch name |> ignore
        ]

        testCase "a state dict's names: layers, a scalar, an empty tensor, a Parameter" <| fun () ->
            let contents = readsLikePyTorch "float32.pt"
            let names = contents.Tensors |> Array.map (fun t -> t.Layer, t.Tensor, t.Key, t.Shape)
            Expect.equal names
                [| "fc", "weight", "fc.weight", [| 3; 4 |]
                   "fc", "bias", "fc.bias", [| 12 |]
                   "scale", "weight", "scale", [||]
                   "empty", "weight", "empty.weight", [| 0; 3 |]
                   "head", "weight", "head.weight", [| 2; 3 |] |] "names and shapes"
            Expect.isEmpty contents.Dropped "nothing dropped"
            Expect.isNone contents.Epoch "no epoch outside Lightning"

        testCase "strided views keep a plain dict's order" <| fun () ->
            let contents = readsLikePyTorch "views.pt"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.StoredKey))
                [| "t.weight"; "slice.weight"; "row.weight"; "column.bias"; "whole.weight"; "step.weight" |] "order"
            let t = contents.Tensors[0]
            Expect.sequenceEqual t.Bytes.Strides [| 1L; 5L |] "a transpose is a strided view"

        testCase "Lightning: epoch, global step, model. stripped, hyper-parameters inert" <| fun () ->
            let contents = readsLikePyTorch "lightning.ckpt"
            Expect.equal contents.Epoch (Some 7) "epoch"
            Expect.equal contents.GlobalStep (Some 1234L) "global step"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.Key)) [| "fc1.weight"; "fc1.bias"; "fc2.weight"; "fc2.bias" |] "keys"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.StoredKey)) [| "model.fc1.weight"; "model.fc1.bias"; "model.fc2.weight"; "model.fc2.bias" |] "stored keys"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.Layer)) [| "fc1"; "fc1"; "fc2"; "fc2" |] "layers"

        testCase "DistributedDataParallel and torch.compile prefixes" <| fun () ->
            let contents = readsLikePyTorch "ddp.pt"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.Key)) [| "conv.weight"; "conv.bias"; "fc.weight" |] "keys"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.StoredKey)) [| "module.conv.weight"; "module.conv.bias"; "module._orig_mod.fc.weight" |] "stored keys"

        testCase "buffers and integer tensors are dropped with their reason" <| fun () ->
            let contents = readsLikePyTorch "batchnorm.pt"
            Expect.equal (dropped contents)
                [ "1.running_mean", "buffer, not a weight"; "1.running_var", "buffer, not a weight"; "1.num_batches_tracked", "buffer, not a weight"
                  "vocab.index", "not floating (int64)"; "mask", "not floating (bool)" ] "dropped"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.Key)) [| "0.weight"; "0.bias"; "1.weight"; "1.bias" |] "analysed"

        testCase "excluded keys are dropped, matched after stripping" <| fun () ->
            let contents = TorchZip.read { CheckpointReadOptions.Default with Exclude = [| "conv.*" |] } (fixture "ddp.pt")
            Expect.equal (dropped contents) [ "module.conv.weight", "excluded by pattern 'conv.*'"; "module.conv.bias", "excluded by pattern 'conv.*'" ] "dropped"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.Key)) [| "fc.weight" |] "kept"

        testCase "units along dim 1: 2-D tensors stream transposed, biases as they are" <| fun () ->
            let e = expected "float32.pt"
            let options = { CheckpointReadOptions.Default with UnitsAlongDim1 = [| "f?" |] }
            let contents = TorchZip.read options (fixture "float32.pt")
            let weight, bias = contents.Tensors[0], contents.Tensors[1]
            Expect.isTrue weight.Transposed "weight transposed"
            Expect.sequenceEqual weight.Shape [| 4; 3 |] "shape reversed"
            Expect.isFalse bias.Transposed "a bias has one dimension"
            let _, _, _, bits = e.Tensors[0]
            let transposed = Array.init 12 (fun i -> bits[(i % 3) * 4 + i / 3])
            for chunk in [ 5; 4096 ] do
                let values = streamed chunk [| weight; bias |]
                Expect.sequenceEqual (bitsOf values[0]) transposed (sprintf "transposed values, chunks of %d" chunk)
            let views = TorchZip.read { CheckpointReadOptions.Default with UnitsAlongDim1 = [| "t" |] } (fixture "views.pt")
            let _, _, _, tBits = (expected "views.pt").Tensors[0]
            // A transposed view read transposed again is its storage, contiguous.
            let again = streamed 4 [| views.Tensors[0] |]
            Expect.sequenceEqual (bitsOf again[0]) (Array.init 15 (fun i -> tBits[(i % 5) * 3 + i / 5])) "a transpose of a transpose"

        testCase "units along dim 1 refuses a tensor of another rank, naming file and key" <| fun () ->
            let options = { CheckpointReadOptions.Default with UnitsAlongDim1 = [| "conv" |] }
            expectArtifactError "module.conv.weight" (fun () -> TorchZip.read options (fixture "ddp.pt"))
            expectArtifactError (fixture "ddp.pt") (fun () -> TorchZip.read options (fixture "ddp.pt"))

        testList "refused files name the file and the fault" [
            for name in [ "legacy.pt"; "wholemodel.pt"; "malicious_entry.pt"; "malicious_elsewhere.ckpt"; "missing_storage.pt"; "short_storage.pt"; "expanded.pt" ] ->
                testCase name <| fun () -> expectRefused name
        ]

        testCase "other files that are not torch zips" <| fun () ->
            use dir = new TempDirectory()
            let text = dir.File "notes.pt"
            File.WriteAllText(text, "these are not weights")
            expectArtifactError "not a zip file" (fun () -> TorchZip.read CheckpointReadOptions.Default text)
            let empty = dir.File "empty.pt"
            File.WriteAllBytes(empty, [||])
            expectArtifactError "empty" (fun () -> TorchZip.read CheckpointReadOptions.Default empty)
            expectArtifactError "does not exist" (fun () -> TorchZip.read CheckpointReadOptions.Default (dir.File "missing.pt"))
            let truncated = mutated dir "float32.pt" (fun b -> b[.. b.Length / 2])
            expectArtifactError "truncated" (fun () -> TorchZip.read CheckpointReadOptions.Default truncated)
            let plainZip = dir.File "plain.zip"
            using (ZipFile.Open(plainZip, ZipArchiveMode.Create)) (fun zip -> zip.CreateEntry("readme.txt") |> ignore)
            expectArtifactError "no <archive>/data.pkl" (fun () -> TorchZip.read CheckpointReadOptions.Default plainZip)

        testCase "a re-zipped (compressed) checkpoint is refused with its cause" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "deflated.pt"
            using (ZipFile.Open(path, ZipArchiveMode.Create)) (fun target ->
                using (ZipFile.OpenRead(fixture "float32.pt")) (fun source ->
                    for entry in source.Entries do
                        use input = entry.Open()
                        use output = target.CreateEntry(entry.FullName, CompressionLevel.Optimal).Open()
                        input.CopyTo output))
            expectArtifactError "compressed" (fun () -> TorchZip.read CheckpointReadOptions.Default path)

        testCase "a stored file that changed after reading is refused while streaming" <| fun () ->
            use dir = new TempDirectory()
            let path = mutated dir "float32.pt" id
            let contents = TorchZip.read CheckpointReadOptions.Default path
            File.Copy(fixture "missing_storage.pt", path, true)
            expectArtifactError "fc.bias" (fun () -> streamed 64 contents.Tensors)

        testCase "fuzz: damaged files give ArtifactException only, quickly, without giant allocations" <| fun () ->
            use dir = new TempDirectory()
            let random = Random(20261205)
            let mutable refused = 0
            for name in [ "float32.pt"; "views.pt"; "lightning.ckpt"; "bfloat16.pt" ] do
                let original = File.ReadAllBytes(fixture name)
                for case in 1 .. 100 do
                    let what, bytes = mutate random original
                    let path = dir.File(sprintf "%s.%d" name case)
                    File.WriteAllBytes(path, bytes)
                    let allocated = GC.GetAllocatedBytesForCurrentThread()
                    let sw = Stopwatch.StartNew()
                    try
                        let contents = TorchZip.read CheckpointReadOptions.Default path
                        streamed 256 contents.Tensors |> ignore
                    with
                    | ArtifactException _ -> refused <- refused + 1
                    | e -> failtestf "%s, case %d (%s): %s escaped: %s" name case what (e.GetType().Name) e.Message
                    Expect.isLessThan sw.ElapsedMilliseconds 1000L (sprintf "%s, case %d (%s): under a second" name case what)
                    Expect.isLessThan (GC.GetAllocatedBytesForCurrentThread() - allocated) (64L <<< 20) (sprintf "%s, case %d (%s): no giant allocation" name case what)
            Expect.isGreaterThan refused 50 "most mutations are refused"
    ]
