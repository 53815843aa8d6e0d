using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// <summary>
/// Marks one version need of an ELF64 little-endian shared library weak (VER_FLG_WEAK = 0x2 in the
/// matching Elf64_Vernaux.vna_flags of .gnu.version_r), when the system libstdc++ lacks that version.
/// Idempotent; rewrites the file through a temporary name.
/// </summary>
public class ThermoWeakenElfVersionNeed : Task
{
    [Required] public string Library { get; set; }
    [Required] public string VersionName { get; set; }

    static readonly string[] LibStdCxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
    };

    static bool Contains(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }

    public override bool Execute()
    {
        var needle = Encoding.ASCII.GetBytes(VersionName + "\0");
        foreach (var candidate in LibStdCxxCandidates)
        {
            if (!File.Exists(candidate)) continue;
            if (Contains(File.ReadAllBytes(candidate), needle))
            {
                Log.LogMessage(MessageImportance.Low, $"{candidate} provides {VersionName}; {Library} left as is.");
                return true;
            }
            break;
        }

        var elf = File.ReadAllBytes(Library);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[4] != 2 || elf[5] != 1)
        {
            Log.LogWarning($"{Library} is not a 64-bit little-endian ELF file; not patched.");
            return true;
        }
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A), shnum = BitConverter.ToUInt16(elf, 0x3C);
        const uint SHT_GNU_verneed = 0x6ffffffe;
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != SHT_GNU_verneed) continue;
            long offset = BitConverter.ToInt64(elf, (int)sh + 0x18);
            uint link = BitConverter.ToUInt32(elf, (int)sh + 0x28);
            long strtab = BitConverter.ToInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);
            bool changed = false, found = false;
            long vn = offset;
            while (true)
            {
                int cnt = BitConverter.ToUInt16(elf, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                for (int a = 0; a < cnt; a++)
                {
                    long nameAt = strtab + BitConverter.ToUInt32(elf, (int)aux + 8);
                    int end = (int)nameAt;
                    while (elf[end] != 0) end++;
                    if (Encoding.ASCII.GetString(elf, (int)nameAt, end - (int)nameAt) == VersionName)
                    {
                        found = true;
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        if ((flags & 0x2) == 0)
                        {
                            BitConverter.GetBytes((ushort)(flags | 0x2)).CopyTo(elf, (int)aux + 4);
                            changed = true;
                        }
                    }
                    uint nextAux = BitConverter.ToUInt32(elf, (int)aux + 12);
                    if (nextAux == 0) break;
                    aux += nextAux;
                }
                uint next = BitConverter.ToUInt32(elf, (int)vn + 12);
                if (next == 0) break;
                vn += next;
            }
            if (!found) { Log.LogMessage(MessageImportance.Low, $"{Library} does not need {VersionName}."); return true; }
            if (!changed) return true;
            var temp = Library + ".thermo-tmp";
            File.WriteAllBytes(temp, elf);
            File.Delete(Library);
            File.Move(temp, Library);
            Log.LogMessage(MessageImportance.High, $"Marked the {VersionName} need of {Path.GetFileName(Library)} weak (system libstdc++ lacks it).");
            return true;
        }
        Log.LogMessage(MessageImportance.Low, $"{Library} has no .gnu.version_r section.");
        return true;
    }
}
