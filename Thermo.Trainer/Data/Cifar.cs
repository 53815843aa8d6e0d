namespace Thermo.Trainer.Data;

/// <summary>
/// Reads CIFAR-10 binary batches: records of 1 label byte followed by 3072 pixel bytes
/// (1024 red, 1024 green, 1024 blue, each 32×32 row-major).
/// </summary>
public static class Cifar
{
    public const int RecordBytes = 1 + 3 * 32 * 32;
    public static readonly string[] TrainFiles = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    public const string TestFile = "test_batch.bin";

    /// <summary>Reads and concatenates batch files into one split (3×32×32 float images in [0, 1]).</summary>
    public static ImageSplit ReadBatches(IEnumerable<string> paths)
    {
        var pixels = new List<float>();
        var labels = new List<long>();
        foreach (var path in paths)
        {
            var bytes = Idx.ReadBytes(path);
            if (bytes.Length == 0 || bytes.Length % RecordBytes != 0)
                throw new ThermoException($"{path}: wrong length {bytes.Length}: a CIFAR-10 batch is a whole number of {RecordBytes}-byte records");
            for (int r = 0; r < bytes.Length / RecordBytes; r++)
            {
                int at = r * RecordBytes;
                if (bytes[at] > 9) throw new ThermoException($"{path}: label {bytes[at]} of record {r} is not a CIFAR-10 class (0–9)");
                labels.Add(bytes[at]);
                for (int i = 1; i < RecordBytes; i++) pixels.Add(bytes[at + i] / 255f);
            }
        }
        return new ImageSplit(pixels.ToArray(), labels.ToArray(), 3, 32, 32);
    }
}
