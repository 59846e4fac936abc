"""OpenFace 2.x FaceLandmarkImg/FeatureExtraction CSVs written as OpenFace writes them.

The header blocks in RecorderCSV.cpp's order (gaze and eye landmarks, pose, 2D
and 3D landmarks, PDM parameters, AU intensities then presences), ", " or ","
separators, fixed-point numbers. Shared by the parser tests and the study
fixtures in the published layout.
"""

from flowjax.evaluation import action_units as au

N_EYE, N_LMK, N_MODES = 56, 68, 34  # OpenFace 2.x's eye landmarks, landmarks, PDM modes


def header(layout="image", gaze=True, pose=True, lmk2d=True, lmk3d=True, pdm=True, aus=True):
    cols = ["face", "confidence"] if layout == "image" else [
        "frame", "face_id", "timestamp", "confidence", "success"]  # fmt: skip
    if gaze:
        cols += ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z",
                 "gaze_angle_x", "gaze_angle_y"]  # fmt: skip
        cols += [f"eye_lmk_{a}_{i}" for a in "xyXYZ" for i in range(N_EYE)]
    if pose:
        cols += ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
    if lmk2d:
        cols += [f"{a}_{i}" for a in "xy" for i in range(N_LMK)]
    if lmk3d:
        cols += [f"{a}_{i}" for a in "XYZ" for i in range(N_LMK)]
    if pdm:
        cols += ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty"]
        cols += [f"p_{i}" for i in range(N_MODES)]
    if aus:
        cols += [f"{n}_r" for n in au.OPENFACE_INTENSITY_AUS]
        cols += [f"{n}_c" for n in au.OPENFACE_PRESENCE_AUS]
    return cols


def row(cols, ids, confidence, intensities=None, success=1):
    """One data row with OpenFace's number formats; ``ids`` = face or (frame, face_id)."""
    intensities = intensities or {}
    out = []
    for c in cols:
        if c in ("face", "face_id"):
            out.append(str(ids if c == "face" else ids[1]))
        elif c == "frame":
            out.append(str(ids[0]))
        elif c == "timestamp":
            out.append(f"{(ids[0] - 1) / 30:.3f}")
        elif c == "confidence":
            out.append(f"{confidence:.3f}")
        elif c == "success":
            out.append(str(success))
        elif c.endswith("_r"):
            out.append(f"{intensities.get(c[:-2], 0.0):.2f}")
        elif c.endswith("_c"):
            out.append("1.0" if intensities.get(c[:-2], 0.0) > 1 else "0.0")
        else:
            out.append("12.5")
    return out


def write_csv(path, cols, rows, sep=", ", newline="\n"):
    lines = [sep.join(cols)] + [sep.join(r) for r in rows]
    path.write_bytes((newline.join(lines) + newline).encode())
    return path
