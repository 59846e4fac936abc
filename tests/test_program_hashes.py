"""tools/program_hashes: a change of computation changes the fingerprint, a moved line does not."""

from flowjax.models.glow import Glow
from tools import program_hashes

MODEL = Glow(image_size=8, n_levels=2, depth=1, width=8)


def test_the_same_program_has_the_same_fingerprint_and_another_computation_another():
    first = program_hashes.program_fingerprints(MODEL, [1])
    assert set(first) == {"encode b1", "decode b1"}
    assert program_hashes.program_fingerprints(MODEL, [1]) == first
    other = program_hashes.program_fingerprints(MODEL.clone(conditioner_dtype="bfloat16"), [1])
    assert other["encode b1"] != first["encode b1"] and other["decode b1"] != first["decode b1"]


def test_source_locations_are_not_part_of_the_fingerprint():
    program = ("HloModule jit_encode\n\nFileNames\n1 \"/a/glow.py\"\n\nFunctionNames\n1 \"encode\"\n\n"
               "FileLocations\n1 {file_name_id=1 line=210}\n\nStackFrames\n1 {file_location_id=1}\n\n"
               "ENTRY main {\n  x = f32[2] parameter(0), metadata={op_name=\"a\" source_line=3}\n}\n")
    moved = (program.replace("/a/glow.py", "/b/glow.py").replace("line=210", "line=220")
             .replace("source_line=3", "source_line=9"))
    assert program_hashes.fingerprint(moved) == program_hashes.fingerprint(program)
    assert program_hashes.fingerprint(program.replace("f32[2]", "f32[3]")) != (
        program_hashes.fingerprint(program))
