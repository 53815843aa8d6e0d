using System.Buffers.Binary;
using System.IO.Compression;

namespace Thermo.Trainer.Data;

/// <summary>
/// Reads and writes IDX files (the MNIST / Fashion-MNIST format): a big-endian magic
/// <c>0x0000 08 NN</c> (unsigned bytes, NN dimensions), NN big-endian int32 sizes, then the bytes.
/// Gzipped files (<c>.gz</c>, detected by content) are read transparently.
/// </summary>
public static class Idx
{
    /// <summary>Reads the whole file, un-gzipping when it starts with the gzip magic.</summary>
    public static byte[] ReadBytes(string path)
    {
        if (!File.Exists(path)) throw new ThermoException($"{path}: data file does not exist");
        var raw = File.ReadAllBytes(path);
        if (raw.Length >= 2 && raw[0] == 0x1f && raw[1] == 0x8b)
        {
            try
            {
                using var gz = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
                using var output = new MemoryStream();
                gz.CopyTo(output);
                return output.ToArray();
            }
            catch (InvalidDataException e)
            {
                throw new ThermoException($"{path}: corrupt gzip data ({e.Message})");
            }
        }
        return raw;
    }

    /// <summary>Parses an IDX header and returns the dimension sizes and the payload.</summary>
    public static (int[] Dims, ReadOnlyMemory<byte> Data) Parse(string path, byte[] bytes, int expectedDims)
    {
        if (bytes.Length < 4) throw new ThermoException($"{path}: too short for an IDX header ({bytes.Length} bytes)");
        if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08)
            throw new ThermoException($"{path}: bad IDX magic 0x{bytes[0]:x2}{bytes[1]:x2}{bytes[2]:x2}{bytes[3]:x2} (expected 0x000008{expectedDims:x2}, unsigned bytes)");
        if (bytes[3] != expectedDims)
            throw new ThermoException($"{path}: IDX file has {bytes[3]} dimensions, expected {expectedDims}");
        int header = 4 + 4 * expectedDims;
        if (bytes.Length < header) throw new ThermoException($"{path}: truncated IDX header");
        var dims = new int[expectedDims];
        long count = 1;
        for (int i = 0; i < expectedDims; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * i));
            if (dims[i] <= 0) throw new ThermoException($"{path}: IDX dimension {i} is {dims[i]}");
            count *= dims[i];
        }
        if (bytes.Length - header != count)
            throw new ThermoException($"{path}: wrong length: header promises {count} data bytes, file holds {bytes.Length - header}");
        return (dims, bytes.AsMemory(header));
    }

    /// <summary>Reads an images file (3 dimensions: count, rows, columns) as floats in [0, 1].</summary>
    public static (float[] Pixels, int Count, int Height, int Width) ReadImages(string path)
    {
        var (dims, data) = Parse(path, ReadBytes(path), 3);
        var pixels = new float[data.Length];
        var span = data.Span;
        for (int i = 0; i < pixels.Length; i++) pixels[i] = span[i] / 255f;
        return (pixels, dims[0], dims[1], dims[2]);
    }

    /// <summary>Reads a labels file (1 dimension); every label must be below <paramref name="classes"/>.</summary>
    public static long[] ReadLabels(string path, int classes)
    {
        var (_, data) = Parse(path, ReadBytes(path), 1);
        var span = data.Span;
        var labels = new long[span.Length];
        for (int i = 0; i < labels.Length; i++)
        {
            if (span[i] >= classes) throw new ThermoException($"{path}: label {span[i]} at index {i} is not below {classes}");
            labels[i] = span[i];
        }
        return labels;
    }

    /// <summary>Writes an IDX file of unsigned bytes with the given dimensions.</summary>
    public static void Write(string path, int[] dims, ReadOnlySpan<byte> data)
    {
        long count = 1;
        foreach (var d in dims) count *= d;
        if (count != data.Length) throw new ArgumentException($"dims promise {count} bytes, data has {data.Length}");
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        bytes[2] = 0x08;
        bytes[3] = (byte)dims.Length;
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), dims[i]);
        data.CopyTo(bytes.AsSpan(4 + 4 * dims.Length));
        Thermo.Analysis.AtomicFiles.Write(path, temp => File.WriteAllBytes(temp, bytes));
    }
}
