module Thermo.Analysis.Tests.SafeTensorsTests

open System
open System.IO
open System.Text
open Expecto
open Thermo.Analysis
open Thermo.Analysis.Checkpoints
open Thermo.Analysis.Tests.Generators

let private f32Bytes (values: float32[]) = values |> Array.collect BitConverter.GetBytes
let private u16Bytes (values: uint16[]) = values |> Array.collect BitConverter.GetBytes
let private f64Bytes (values: float[]) = values |> Array.collect BitConverter.GetBytes

/// IEEE binary16 → binary32 by the bit layout, independent of System.Half: subnormals scaled by
/// 2^-24 (exact in float32), normals re-biased, 31 the infinities and NaNs.
let private halfToSingle (h: uint16) =
    let sign = if h &&& 0x8000us <> 0us then -1.0f else 1.0f
    let exponent = int (h >>> 10) &&& 0x1F
    let mantissa = int h &&& 0x3FF
    if exponent = 0 then sign * float32 (float mantissa * Math.Pow(2.0, -24.0))
    elif exponent = 31 then (if mantissa = 0 then sign * Single.PositiveInfinity else Single.NaN)
    else
        BitConverter.Int32BitsToSingle(((int h &&& 0x8000) <<< 16) ||| ((exponent - 15 + 127) <<< 23) ||| (mantissa <<< 13))

/// Bit-for-bit equality, NaN equal to any NaN (payloads are not part of the contract).
let private sameBits (actual: float32[]) (expected: float32[]) (what: string) =
    Expect.equal actual.Length expected.Length (what + ": count")
    for i in 0 .. actual.Length - 1 do
        if not (Single.IsNaN actual[i] && Single.IsNaN expected[i]) then
            if BitConverter.SingleToInt32Bits actual[i] <> BitConverter.SingleToInt32Bits expected[i] then
                failtestf "%s: value %d is %g (0x%08x), expected %g (0x%08x)" what i actual[i] (BitConverter.SingleToInt32Bits actual[i]) expected[i] (BitConverter.SingleToInt32Bits expected[i])

/// All values of `tensors`, streamed through chunks of `chunkLength`; checks that only the last
/// chunk is partly filled.
let private streamAll (tensors: CheckpointTensor[]) (chunkLength: int) =
    let values = ResizeArray<float32>()
    let mutable partial = false
    SafeTensors.streamValues tensors (fun () -> Array.zeroCreate chunkLength) (fun chunk count ->
        Expect.isFalse partial "only the last chunk is partly filled"
        if count < chunk.Length then partial <- true
        values.AddRange(chunk.AsSpan(0, count).ToArray()))
    values.ToArray()

let private rng = Random(20240607)
let private halves = Array.append [| 0us; 0x8000us; 0x0001us; 0x03FFus; 0x0400us; 0x3C00us; 0x7BFFus; 0x7C00us; 0xFC00us; 0x7E00us; 0x8001us |] (Array.init 500 (fun _ -> uint16 (rng.Next 65536)))
let private bfloats = Array.append [| 0us; 0x8000us; 0x0001us; 0x3F80us; 0x7F7Fus; 0x7F80us; 0xFF80us; 0x7FC0us |] (Array.init 500 (fun _ -> uint16 (rng.Next 65536)))
let private singles = Array.append [| 0.0f; -0.0f; 1.0f; Single.Epsilon; Single.MaxValue; -3.5f |] (Array.init 500 (fun _ -> float32 (rng.NextDouble() * 2.0 - 1.0)))
let private doubles = Array.append [| 0.0; 1.0 / 3.0; 1e-50; 1e300; -2.5; Double.Epsilon |] (Array.init 500 (fun _ -> rng.NextDouble() * 100.0 - 50.0))

/// A model of each dtype plus an integer tensor and a normalisation buffer.
let private writeModel (path: string) =
    writeSafetensors path
        [ "module.conv.weight", "F32", [| 3; 13; 13 |], f32Bytes (Array.append singles [| 7.0f |])
          "module.conv.bias", "F16", [| 511 |], u16Bytes halves
          "module.bn.running_mean", "F32", [| 2 |], f32Bytes [| 1.0f; 2.0f |]
          "module.bn.num_batches_tracked", "I64", [||], BitConverter.GetBytes 5L
          "module.fc.weight", "BF16", [| 4; 127 |], u16Bytes bfloats
          "module.pos_embed", "F64", [| 506 |], f64Bytes doubles
          "module.empty.weight", "F32", [| 0; 3 |], [||]
          "module.scale", "F32", [||], f32Bytes [| 0.25f |] ]

let private expectedModelValues () =
    Array.concat
        [ Array.append singles [| 7.0f |]
          halves |> Array.map halfToSingle
          bfloats |> Array.map (fun w -> BitConverter.Int32BitsToSingle(int w <<< 16))
          doubles |> Array.map float32
          [| 0.25f |] ]

/// Expects an `ArtifactException` naming the file and `key`.
let private expectFault (path: string) (key: string) (f: unit -> 'a) =
    try
        f () |> ignore
        failtestf "expected an ArtifactException about %s" key
    with ArtifactException message ->
        Expect.stringContains message (Path.GetFileName path) "the message names the file"
        Expect.stringContains message key "the message names the key or fault"

[<Tests>]
let tests =
    testList "safetensors" [
        testCase "read locates every tensor from the header; integer tensors and buffers are dropped with a reason" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "model.safetensors"
            writeModel path
            let contents = SafeTensors.read CheckpointReadOptions.Default path
            Expect.equal contents.Format "safetensors" "format"
            Expect.equal contents.Path path "path"
            Expect.isNone contents.Epoch "no epoch"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.Key)) [| "conv.weight"; "conv.bias"; "fc.weight"; "pos_embed"; "empty.weight"; "scale" |] "header order, prefixes stripped"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.Layer, t.Tensor)) [| "conv", "weight"; "conv", "bias"; "fc", "weight"; "pos_embed", "weight"; "empty", "weight"; "scale", "weight" |] "layer and tensor"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.DType)) [| StoredDType.Float32; StoredDType.Float16; StoredDType.BFloat16; StoredDType.Float64; StoredDType.Float32; StoredDType.Float32 |] "dtypes"
            let conv = contents.Tensors[0]
            Expect.equal conv.StoredKey "module.conv.weight" "the stored key"
            Expect.sequenceEqual conv.Shape [| 3; 13; 13 |] "shape"
            Expect.sequenceEqual conv.Bytes.Strides [| 169L; 13L; 1L |] "row-major strides"
            Expect.isNull conv.Bytes.Entry "no zip entry"
            Expect.isFalse conv.Transposed "not transposed"
            let headerLength = BitConverter.ToInt64(File.ReadAllBytes path, 0)
            Expect.equal conv.Bytes.Offset (8L + headerLength) "the first tensor starts the data buffer"
            Expect.equal contents.Tensors[1].Bytes.Offset (8L + headerLength + 4L * 507L) "the second follows it"
            Expect.sequenceEqual contents.Dropped
                [| { StoredKey = "module.bn.running_mean"; Reason = "buffer, not a weight" }; { StoredKey = "module.bn.num_batches_tracked"; Reason = "buffer, not a weight" } |] "dropped"

        testCase "values stream bit for bit: F32 copied, F16 and BF16 converted exactly, F64 rounded, across chunk boundaries" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "model.safetensors"
            writeModel path
            let contents = SafeTensors.read CheckpointReadOptions.Default path
            let expected = expectedModelValues ()
            for chunkLength in [ 1; 7; 64; 1 <<< 14 ] do
                sameBits (streamAll contents.Tensors chunkLength) expected (sprintf "chunks of %d" chunkLength)
            // System.Half agrees with the bit-level conversion
            sameBits (halves |> Array.map (fun h -> float32 (BitConverter.UInt16BitsToHalf h))) (halves |> Array.map halfToSingle) "System.Half"

        testCase "a tensor larger than the read buffer streams whole, and an empty list streams nothing" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "big.safetensors"
            let big = Array.init 300_001 (fun i -> float32 i * 0.5f)
            let bigHalf = Array.init 200_003 (fun i -> uint16 (i % 65536))
            writeSafetensors path [ "a.weight", "F32", [| 300_001 |], f32Bytes big; "b.weight", "F16", [| 200_003 |], u16Bytes bigHalf ]
            let contents = SafeTensors.read CheckpointReadOptions.Default path
            sameBits (streamAll contents.Tensors 65536) (Array.append big (bigHalf |> Array.map halfToSingle)) "big tensors"
            let mutable calls = 0
            SafeTensors.streamValues [||] (fun () -> calls <- calls + 1; Array.zeroCreate 8) (fun _ _ -> calls <- calls + 1)
            Expect.equal calls 0 "no chunk asked for nothing"

        testCase "exclude patterns drop keys; a layer with units along dim 1 is read transposed" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "gpt.safetensors"
            let w = Array.init 12 float32 // stored (3 in, 4 out)
            writeSafetensors path
                [ "h.0.attn.c_attn.weight", "F32", [| 3; 4 |], f32Bytes w
                  "h.0.attn.c_attn.bias", "BF16", [| 4 |], u16Bytes [| 0x3F80us; 0x4000us; 0x4040us; 0x4080us |]
                  "h.0.ln_1.weight", "F16", [| 2 |], u16Bytes [| 0x3C00us; 0x4000us |]
                  "lm_head.weight", "F32", [| 2; 2 |], f32Bytes [| 1.0f; 2.0f; 3.0f; 4.0f |] ]
            let options = { Exclude = [| "*.ln_?.*"; "lm_head*" |]; UnitsAlongDim1 = [| "h.*.attn.c_attn" |] }
            let contents = SafeTensors.read options path
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.Key)) [| "h.0.attn.c_attn.weight"; "h.0.attn.c_attn.bias" |] "excluded keys are gone"
            Expect.sequenceEqual (contents.Dropped |> Array.map (fun d -> d.StoredKey, d.Reason))
                [| "h.0.ln_1.weight", "excluded by pattern '*.ln_?.*'"; "lm_head.weight", "excluded by pattern 'lm_head*'" |] "dropped by pattern"
            let weight = contents.Tensors[0]
            Expect.isTrue weight.Transposed "transposed"
            Expect.sequenceEqual weight.Shape [| 4; 3 |] "the analysis shape is (out, in)"
            Expect.isFalse contents.Tensors[1].Transposed "a bias is never transposed"
            let expected = Array.append [| for c in 0..3 do for r in 0..2 -> w[r * 4 + c] |] [| 1.0f; 2.0f; 3.0f; 4.0f |]
            for chunkLength in [ 1; 5; 100 ] do
                sameBits (streamAll contents.Tensors chunkLength) expected (sprintf "transposed, chunks of %d" chunkLength)

        testCase "a sharded index reads as one checkpoint in the index's order" <| fun () ->
            use dir = new TempDirectory()
            writeSafetensors (dir.File "model-00001-of-00002.safetensors") [ "b.weight", "F32", [| 2 |], f32Bytes [| 3.0f; 4.0f |]; "a.weight", "F16", [| 1 |], u16Bytes [| 0x3C00us |] ]
            writeSafetensors (dir.File "model-00002-of-00002.safetensors") [ "c.weight", "BF16", [| 1 |], u16Bytes [| 0x4000us |]; "steps", "I64", [| 1 |], BitConverter.GetBytes 3L ]
            let index = dir.File "model.safetensors.index.json"
            File.WriteAllText(index, """{"metadata": {"total_size": 14}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "c.weight": "model-00002-of-00002.safetensors", "b.weight": "model-00001-of-00002.safetensors", "steps": "model-00002-of-00002.safetensors"}}""")
            let shardsRead = ResizeArray()
            let contents = ShardedCheckpoint.read (fun shard -> shardsRead.Add(Path.GetFileName shard); SafeTensors.read CheckpointReadOptions.Default shard) index
            Expect.equal contents.Format "safetensors-sharded" "format"
            Expect.equal contents.Path index "the index is the checkpoint"
            Expect.sequenceEqual shardsRead [ "model-00001-of-00002.safetensors"; "model-00002-of-00002.safetensors" ] "each shard read once"
            Expect.sequenceEqual (contents.Tensors |> Array.map (fun t -> t.Key)) [| "a.weight"; "c.weight"; "b.weight" |] "index order"
            Expect.sequenceEqual (contents.Dropped |> Array.map (fun d -> d.StoredKey, d.Reason)) [| "steps", "not floating (I64)" |] "dropped"
            sameBits (streamAll contents.Tensors 2) [| 1.0f; 2.0f; 3.0f; 4.0f |] "values across shards"
            let torchIndex = dir.File "pytorch_model.bin.index.json"
            File.WriteAllText(torchIndex, """{"weight_map": {"a.weight": "pytorch_model-00001-of-00001.bin"}}""")
            File.WriteAllText(dir.File "pytorch_model-00001-of-00001.bin", "")
            let fake shard = { Path = shard; Format = "torch-zip"; Tensors = (SafeTensors.read CheckpointReadOptions.Default (dir.File "model-00001-of-00002.safetensors")).Tensors; Dropped = [||]; Epoch = Some 2; GlobalStep = Some 10L }
            let torch = ShardedCheckpoint.read fake torchIndex
            Expect.equal torch.Format "torch-sharded" "torch shards"
            Expect.equal torch.GlobalStep (Some 10L) "the shards' global step"
            Expect.sequenceEqual (torch.Dropped |> Array.map (fun d -> d.StoredKey)) [| "b.weight" |] "a tensor the index does not list is dropped, not lost"

        testCase "a sharded index fails naming a missing shard, a key absent from its shard, or a malformed index" <| fun () ->
            use dir = new TempDirectory()
            writeSafetensors (dir.File "s1.safetensors") [ "a.weight", "F32", [| 1 |], f32Bytes [| 1.0f |] ]
            let index = dir.File "model.safetensors.index.json"
            let read () = ShardedCheckpoint.read (SafeTensors.read CheckpointReadOptions.Default) index
            File.WriteAllText(index, """{"weight_map": {"a.weight": "s1.safetensors", "z.weight": "s2.safetensors"}}""")
            expectFault index "s2.safetensors" read
            expectFault index "z.weight" read
            File.WriteAllText(index, """{"weight_map": {"a.weight": "s1.safetensors", "q.weight": "s1.safetensors"}}""")
            expectFault index "q.weight" read
            File.WriteAllText(index, """{"weight_map": [1]}""")
            expectFault index "weight_map" read
            File.WriteAllText(index, """{"weight_map": """)
            expectFault index "not JSON" read
            expectFault (dir.File "none.index.json") "does not exist" (fun () -> ShardedCheckpoint.read (SafeTensors.read CheckpointReadOptions.Default) (dir.File "none.index.json"))
            expectArtifactAt (dir.File "none.index.json") "does not exist" (fun () -> ShardedCheckpoint.read (SafeTensors.read CheckpointReadOptions.Default) (dir.File "none.index.json"))

        testCase "every malformed header fails naming the file and the key" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "bad.safetensors"
            let read () = SafeTensors.read CheckpointReadOptions.Default path
            let entry key dtype shape (b: int64) (e: int64) = sprintf "\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%d,%d]}" key dtype shape b e
            let withHeader (header: string) (dataLength: int) =
                writeRawSafetensors path header (Array.zeroCreate dataLength)
                read
            expectFault path "does not exist" read
            File.WriteAllBytes(path, [| 1uy; 2uy |])
            expectFault path "truncated" read
            File.WriteAllBytes(path, Array.append (BitConverter.GetBytes 1000UL) (Encoding.UTF8.GetBytes "{}"))
            expectFault path "larger than the file" read
            File.WriteAllBytes(path, Array.append (BitConverter.GetBytes (1UL <<< 40)) (Array.zeroCreate 64))
            expectFault path "absurd" read
            File.WriteAllBytes(path, Array.append (BitConverter.GetBytes UInt64.MaxValue) (Array.zeroCreate 64))
            expectFault path "absurd" read
            expectFault path "not JSON" (withHeader "{\"a\": [" 0)
            expectFault path "not a JSON object" (withHeader "[1, 2]" 0)
            expectFault path "x.weight" (withHeader ("{" + entry "x.weight" "Q7" "[1]" 0L 4L + "}") 4)
            expectFault path "unknown dtype 'Q7'" (withHeader ("{" + entry "x.weight" "Q7" "[1]" 0L 4L + "}") 4)
            expectFault path "outside the data buffer" (withHeader ("{" + entry "x.weight" "F32" "[4]" 0L 16L + "}") 8)
            expectFault path "x.weight" (withHeader ("{" + entry "x.weight" "F32" "[4]" 8L 4L + "}") 16)
            expectFault path "x.weight" (withHeader ("{" + entry "x.weight" "F32" "[4]" 0L 12L + "}") 16)
            expectFault path "needs 16" (withHeader ("{" + entry "x.weight" "F32" "[4]" 0L 12L + "}") 16)
            expectFault path "overlap" (withHeader ("{" + entry "x.weight" "F32" "[2]" 0L 8L + "," + entry "y.weight" "F32" "[2]" 4L 12L + "}") 16)
            expectFault path "y.weight" (withHeader ("{" + entry "x.weight" "F32" "[2]" 0L 8L + "," + entry "y.weight" "F32" "[2]" 4L 12L + "}") 16)
            expectFault path "x.weight" (withHeader ("{" + entry "x.weight" "F32" "[-2]" 0L 8L + "}") 8)
            expectFault path "x.weight" (withHeader ("{" + entry "x.weight" "F32" "[1e20]" 0L 8L + "}") 8)
            expectFault path "overflows" (withHeader ("{" + entry "x.weight" "F32" "[2147483647,2147483647,2147483647]" 0L 8L + "}") 8)
            expectFault path "overflows" (withHeader ("{" + entry "x.weight" "F64" "[2147483647,2147483647,2]" 0L 8L + "}") 8)
            expectFault path "x.weight" (withHeader ("{" + entry "x.weight" "F32" "[2]" -8L 0L + "}") 8)
            expectFault path "x.weight" (withHeader "{\"x.weight\":{\"dtype\":\"F32\",\"shape\":[2]}}" 8)
            expectFault path "x.weight" (withHeader "{\"x.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}" 8)
            expectFault path "x.weight" (withHeader "{\"x.weight\":[1]}" 8)
            expectFault path "twice" (withHeader ("{" + entry "x.weight" "F32" "[1]" 0L 4L + "," + entry "x.weight" "F32" "[1]" 4L 8L + "}") 8)
            // integers are dropped, not errors
            let dropped = (withHeader ("{" + entry "n" "I64" "[1]" 0L 8L + "," + entry "m" "BOOL" "[2]" 8L 10L + "}") 10) ()
            Expect.sequenceEqual (dropped.Dropped |> Array.map (fun d -> d.Reason)) [| "not floating (I64)"; "not floating (BOOL)" |] "integer dtypes dropped"

        testCase "a file truncated after its header was read fails while streaming, naming the file and the key" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "cut.safetensors"
            writeSafetensors path [ "a.weight", "F32", [| 4 |], f32Bytes [| 1.0f; 2.0f; 3.0f; 4.0f |]; "b.weight", "F16", [| 4 |], u16Bytes [| 1us; 2us; 3us; 4us |] ]
            let contents = SafeTensors.read CheckpointReadOptions.Default path
            use stream = new FileStream(path, FileMode.Open)
            stream.SetLength(stream.Length - 2L)
            stream.Dispose()
            expectFault path "b.weight" (fun () -> streamAll contents.Tensors 3)
            File.Delete path
            expectFault path "a.weight" (fun () -> streamAll contents.Tensors 3)

        testCase "fuzz: mutated files raise ArtifactException or read, quickly and in little memory" <| fun () ->
            use dir = new TempDirectory()
            let valid = dir.File "valid.safetensors"
            writeSafetensors valid
                [ "a.weight", "F32", [| 3; 4 |], f32Bytes (Array.init 12 float32)
                  "a.bias", "F16", [| 3 |], u16Bytes [| 1us; 2us; 3us |]
                  "b.weight", "BF16", [| 2; 2 |], u16Bytes [| 1us; 2us; 3us; 4us |]
                  "c", "F64", [| 2 |], f64Bytes [| 1.0; 2.0 |]
                  "n", "I64", [| 1 |], BitConverter.GetBytes 1L ]
            let original = File.ReadAllBytes valid
            let headerLength = int (BitConverter.ToInt64(original, 0))
            let random = Random(7)
            let path = dir.File "mutant.safetensors"
            let options = { Exclude = [||]; UnitsAlongDim1 = [| "a" |] }
            let mutable failures = 0
            for case in 0 .. 399 do
                let bytes = Array.copy original
                let mutant =
                    match case % 5 with
                    | 0 -> bytes[.. random.Next bytes.Length - 1]
                    | 1 ->
                        for _ in 0 .. random.Next(1, 8) do
                            bytes[random.Next bytes.Length] <- byte (random.Next 256)
                        bytes
                    | 2 ->
                        let length = if random.Next 2 = 0 then random.NextInt64() else int64 (random.Next(0, headerLength * 2))
                        BitConverter.GetBytes length |> Array.iteri (fun i b -> bytes[i] <- b)
                        bytes
                    | 3 ->
                        // rewrite one number of the header (a shape or an offset) to something hostile
                        let header = Encoding.UTF8.GetString(bytes, 8, headerLength)
                        let digits = [| for i in 0 .. header.Length - 1 do if Char.IsDigit header[i] then i |]
                        let at = digits[random.Next digits.Length]
                        let hostile = [| "0"; "9"; "4294967296"; "99999999999999999999"; "-1"; "2147483647"; "1e9" |][random.Next 7]
                        let mutated = header.Substring(0, at) + hostile + header.Substring(at + 1)
                        let json = Encoding.UTF8.GetBytes mutated
                        Array.concat [ BitConverter.GetBytes(uint64 json.Length); json; bytes[8 + headerLength ..] ]
                    | _ ->
                        // drop one header character: broken JSON, or a valid one meaning something else
                        let at = 8 + random.Next headerLength
                        Array.append bytes[.. at - 1] bytes[at + 1 ..]
                File.WriteAllBytes(path, mutant)
                let allocated = GC.GetAllocatedBytesForCurrentThread()
                let clock = Diagnostics.Stopwatch.StartNew()
                try
                    let contents = SafeTensors.read options path
                    streamAll contents.Tensors 5 |> ignore
                with
                | ArtifactException message ->
                    Expect.stringContains message "mutant.safetensors" "names the file"
                    failures <- failures + 1
                Expect.isLessThan clock.ElapsedMilliseconds 2000L (sprintf "case %d is fast" case)
                Expect.isLessThan (GC.GetAllocatedBytesForCurrentThread() - allocated) (16L <<< 20) (sprintf "case %d allocates little" case)
            Expect.isGreaterThan failures 100 "most mutants are rejected"
    ]
