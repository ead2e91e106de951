"""De-identification for anything that leaves the app: DICOM PS3.15 Annex E, Basic Application Level
Confidentiality Profile, for headers (actions D/Z/X/U on the attributes below, private attributes removed,
overlays and curves removed), recorded in the dataset as the standard asks. Burned-in text in the pixels is
a separate risk: `burned_in_warning` says when it must be checked by eye."""

from __future__ import annotations

import copy

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

PROFILE = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"

# Z: replace with an empty value (type 2 attributes must stay present); X: remove.
EMPTY = {
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
    "StudyTime", "ContentDate", "ContentTime", "ReferringPhysicianName", "ContrastBolusAgent",
}
REMOVE = {
    "PatientAge", "PatientBirthTime", "PatientBirthName", "PatientAddress", "PatientTelephoneNumbers",
    "PatientMotherBirthName", "PatientWeight", "PatientSize", "PatientComments", "PatientReligiousPreference",
    "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence", "EthnicGroup", "Occupation",
    "MilitaryRank", "BranchOfService", "MedicalRecordLocator", "AdditionalPatientHistory", "ResponsiblePerson",
    "ResponsibleOrganization", "PatientInsurancePlanCodeSequence", "CountryOfResidence", "RegionOfResidence",
    "MedicalAlerts", "Allergies", "SmokingStatus", "PregnancyStatus", "LastMenstrualDate",
    "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime", "OverlayDate",
    "OverlayTime", "CurveDate", "CurveTime", "InstanceCreationDate", "InstanceCreationTime",
    "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "PerformedProcedureStepID",
    "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy",
    "RequestingPhysician", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "StudyDescription", "SeriesDescription", "ImageComments", "ProtocolName", "RequestedProcedureDescription",
    "PerformedProcedureStepDescription", "AdmittingDiagnosesDescription", "DerivationDescription",
    "RequestAttributesSequence", "ReferencedPatientSequence", "ReferencedStudySequence", "RequestedProcedureID",
    "ScheduledProcedureStepID", "IssuerOfPatientID", "ClinicalTrialSponsorName", "AdmissionID",
    "ReasonForStudy", "ReasonForTheRequestedProcedure", "TextComments", "TextString", "PersonName",
    "VerifyingObserverName", "ContentCreatorName", "ScheduledPerformingPhysicianName",
}
UIDS = {
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID", "ReferencedSOPInstanceUID",
    "ReferencedFrameOfReferenceUID", "MediaStorageSOPInstanceUID", "IrradiationEventUID", "StorageMediaFileSetUID",
    "SynchronizationFrameOfReferenceUID", "ConcatenationUID", "DimensionOrganizationUID",
}
# Modalities whose images often carry burned-in text when the header does not say otherwise.
BURNED_IN_MODALITIES = {"US", "SC", "XA", "RF", "ES", "OT", "SM", "DX", "CR", "MG", "IO", "PX", "GM", "XC"}


def replace_uid(uid: str, salt: str) -> str:
    """The same original UID always maps to the same new one (per salt), so series stay together."""
    return generate_uid(entropy_srcs=[salt, str(uid)])


def deidentify(ds: Dataset, salt: str) -> Dataset:
    """A de-identified copy; the original is not changed."""
    out = copy.deepcopy(ds)
    out.remove_private_tags()
    _clean(out, salt)
    if hasattr(out, "file_meta") and "MediaStorageSOPInstanceUID" in out.file_meta:
        out.file_meta.MediaStorageSOPInstanceUID = replace_uid(out.file_meta.MediaStorageSOPInstanceUID, salt)
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = PROFILE
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    out.DeidentificationMethodCodeSequence = Sequence([code])
    return out


def _clean(ds: Dataset, salt: str) -> None:
    for element in list(ds):
        group = element.tag.group
        if 0x5000 <= group <= 0x50FF or (0x6000 <= group <= 0x60FF and element.tag.element == 0x3000):
            del ds[element.tag]  # curves and overlay data
            continue
        keyword = element.keyword
        if keyword in REMOVE:
            del ds[element.tag]
        elif keyword in EMPTY:
            element.value = None if element.VR == "SQ" else ""
        elif keyword in UIDS and element.value:
            element.value = replace_uid(element.value, salt)
        elif element.VR == "SQ":
            for item in element.value:
                _clean(item, salt)


def burned_in_warning(ds: Dataset) -> str | None:
    """A warning when the pixels may carry identifying text the header clean-up cannot remove."""
    flag = str(ds.get("BurnedInAnnotation", "")).upper()
    if flag == "YES":
        return "the image is marked as having burned-in annotation: check it for names or dates before sharing"
    if flag != "NO" and ds.get("Modality") in BURNED_IN_MODALITIES:
        return (f"{ds.get('Modality')} images often have text burned into the pixels and this file does not say "
                f"otherwise: check it before sharing")
    return None
