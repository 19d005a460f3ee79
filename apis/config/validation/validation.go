// Package validation validates locus's plugin args. Every error names the
// field by its path, so a bad pluginConfig entry reads as
// "profiles[0].pluginConfig[2].args.zoneWeight: ...".
package validation

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"locus.dev/locus/apis/config"
)

// ValidateComplianceArgs validates the Compliance plugin's args.
func ValidateComplianceArgs(path *field.Path, args *config.ComplianceArgs) error {
	var errs field.ErrorList
	prefixPath := path.Child("certificationLabelPrefix")
	if args.CertificationLabelPrefix == "" {
		errs = append(errs, field.Required(prefixPath, "the prefix of certification labels"))
	} else if msgs := validation.IsQualifiedName(args.CertificationLabelPrefix + "pci-dss"); len(msgs) != 0 {
		for _, m := range msgs {
			errs = append(errs, field.Invalid(prefixPath, args.CertificationLabelPrefix, "prefix plus a standard must form a label key: "+m))
		}
	}
	labelPath := path.Child("residencyLabel")
	if args.ResidencyLabel == "" {
		errs = append(errs, field.Required(labelPath, "the node label that holds a node's region"))
	} else {
		for _, m := range validation.IsQualifiedName(args.ResidencyLabel) {
			errs = append(errs, field.Invalid(labelPath, args.ResidencyLabel, "must be a label key: "+m))
		}
	}
	groups := make([]string, 0, len(args.Residency))
	for g := range args.Residency {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		groupPath := path.Child("residency").Key(g)
		for _, m := range validation.IsDNS1123Label(g) {
			errs = append(errs, field.Invalid(groupPath, g, "residency group: "+m))
		}
		regions := args.Residency[g]
		if len(regions) == 0 {
			errs = append(errs, field.Required(groupPath, "at least one region"))
		}
		for i, r := range regions {
			if r == "" {
				errs = append(errs, field.Required(groupPath.Index(i), "region name"))
				continue
			}
			for _, m := range validation.IsValidLabelValue(r) {
				errs = append(errs, field.Invalid(groupPath.Index(i), r, m))
			}
		}
	}
	return errs.ToAggregate()
}

// ValidateDataLocalityArgs validates the DataLocality plugin's args.
func ValidateDataLocalityArgs(path *field.Path, args *config.DataLocalityArgs) error {
	var errs field.ErrorList
	if args.ZoneWeight < 0 || args.ZoneWeight > 1 {
		errs = append(errs, field.Invalid(path.Child("zoneWeight"), args.ZoneWeight, "must be between 0 and 1"))
	}
	if args.RegionWeight < 0 || args.RegionWeight > 1 {
		errs = append(errs, field.Invalid(path.Child("regionWeight"), args.RegionWeight, "must be between 0 and 1"))
	} else if args.RegionWeight > args.ZoneWeight {
		errs = append(errs, field.Invalid(path.Child("regionWeight"), args.RegionWeight,
			fmt.Sprintf("must not exceed zoneWeight (%v): data in the node's zone is also in its region", args.ZoneWeight)))
	}
	if args.DefaultLocalityWait.Duration < 0 {
		errs = append(errs, field.Invalid(path.Child("defaultLocalityWait"), args.DefaultLocalityWait.Duration.String(), "must not be negative"))
	}
	return errs.ToAggregate()
}

// ValidateBatchQuotaArgs validates the BatchQuota plugin's args.
func ValidateBatchQuotaArgs(path *field.Path, args *config.BatchQuotaArgs) error {
	var errs field.ErrorList
	if args.DefaultScheduleTimeoutSeconds <= 0 {
		errs = append(errs, field.Invalid(path.Child("defaultScheduleTimeoutSeconds"), args.DefaultScheduleTimeoutSeconds, "must be greater than 0"))
	}
	if args.StatusUpdateInterval.Duration <= 0 {
		errs = append(errs, field.Invalid(path.Child("statusUpdateInterval"), args.StatusUpdateInterval.Duration.String(), "must be greater than 0"))
	}
	return errs.ToAggregate()
}
